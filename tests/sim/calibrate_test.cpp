// `attnsim calibrate`: target parsing, the exact gamma <-> margin round trip, the margin
// profile on a hand-computed head, and end to end: the written config, run by the
// `attnsim run` binary, reproduces the calibrated figures.
#include "arch/qk_math.h"
#include "sim/calibrate.h"
#include "sim/config.h"
#include "arch/head_model.h"
#include "sim/quality.h"
#include "workloads/safetensors.h"
#include "workloads/synth.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace attnsim;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    for (int attempt = 0;; ++attempt) {
      dir_ = fs::temp_directory_path() /
             ("attnsim-calibrate-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
      if (fs::create_directory(dir_)) break;
      if (attempt > 100) throw std::runtime_error("cannot create a temp directory");
    }
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

struct Command {
  int exit_code;
  std::string err;
};

// Runs the attnsim binary with `args` (already shell-quoted), stdout discarded.
Command run_attnsim(const TempDir& dir, const std::string& args) {
  const std::string err = dir.file("stderr.txt");
  const int status = std::system((std::string(ATTNSIM_BINARY) + " " + args + " >/dev/null 2>" + err).c_str());
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The stats of `attnsim run` on the calibrated config (quality on).
nlohmann::json run_binary(const TempDir& dir, const std::string& config, const std::string& trace) {
  const std::string stats = dir.file("stats.json");
  const Command c = run_attnsim(dir, "run --config " + config + " --trace " + trace + " --out " + stats + " -q");
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  return read_json(stats);
}

std::string write_synth(const TempDir& dir, bool causal) {
  SynthOptions o;
  o.layers = 2;
  o.heads = 4;
  o.tokens = 64;
  o.head_dim = 32;
  o.seed = 7;
  o.causal = causal;
  const std::string path = dir.file(causal ? "synth_causal.safetensors" : "synth.safetensors");
  write_synthetic_trace(o, path);
  return path;
}

Config config_with(const std::vector<std::string>& sets) {
  return resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
}

// Checks that `stats` (from attnsim run) shows exactly the per-head counts of `r`.
void require_same_heads(const CalibrationResult& r, const nlohmann::json& stats) {
  for (const auto& layer : r.heads)
    for (const HeadCalibration& h : layer) {
      const auto& s = stats["filter"]["by_layer"][h.layer]["by_head"][h.head];
      CHECK(s["candidate_keys"].get<uint64_t>() == h.candidates);
      CHECK(s["filtered_keys"].get<uint64_t>() == h.filtered);
      CHECK(s["rel_error"].get<double>() == Approx(h.rel_error).epsilon(1e-12).margin(1e-15));
    }
}

std::vector<float> random_values(std::mt19937& rng, size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 1000.0f;
  return v;
}

}  // namespace

TEST_CASE("calibrate: --target parses the two metrics and refuses values outside (0, 1)") {
  CalibrationTarget t = parse_calibration_target("filtered_ratio=0.85");
  CHECK(t.metric == CalibrationMetric::FilteredRatio);
  CHECK(t.value == 0.85);
  t = parse_calibration_target("rel_error=2e-2");
  CHECK(t.metric == CalibrationMetric::RelError);
  CHECK(t.value == 0.02);
  for (const char* bad : {"filtered_ratio=0", "filtered_ratio=1", "rel_error=1.5", "rel_error=-0.1",
                          "filtered_ratio=nan", "filtered_ratio=0.5x", "filtered_ratio=", "mass_recall=0.9",
                          "0.85", "filtered_ratio= 0.5"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_calibration_target(bad), Catch::Contains("--target") && Catch::Contains(bad));
  }
}

TEST_CASE("calibrate: gamma_for_margin gives back exactly the margin through latte_margin") {
  // Hand case: scale_q = scale_k = 1, d = 4: one score unit is 1/2 logit. Margin 3 ->
  // gamma = exp(-3.5 / 2); latte_margin = floor(1.75 * 2 / 1) = floor(3.5) = 3.
  CHECK(gamma_for_margin(3, 4, 1.0, 1.0) == std::exp(-1.75));
  CHECK(qk::latte_margin(std::exp(-1.75), 4, 1.0, 1.0) == 3);
  // Margin 0 -> gamma = exp(-0.25), inside (0, 1).
  CHECK(gamma_for_margin(0, 4, 1.0, 1.0) == std::exp(-0.25));

  struct Geometry {
    int d;
    double sq, sk;
  };
  for (const Geometry g : {Geometry{64, 0.02, 0.015}, Geometry{32, 1.0 / 127, 3.0 / 127}, Geometry{128, 0.3, 0.07},
                           Geometry{1, 1.0, 1.0}, Geometry{768, 1e-3, 2e-3}}) {
    const double step = g.sq * g.sk / std::sqrt(double(g.d));  // logits per score unit
    for (int64_t margin = 0; margin < 3000 && (margin + 0.5) * step < 700; ++margin) {
      const double gamma = gamma_for_margin(margin, g.d, g.sq, g.sk);
      REQUIRE(gamma > 0.0);
      REQUIRE(gamma <= 1.0);
      REQUIRE(qk::latte_margin(gamma, g.d, g.sq, g.sk) == margin);
    }
    for (int64_t margin : {int64_t{100000}, int64_t{1234567}, int64_t{50000000}}) {
      if ((margin + 0.5) * step > 700) continue;  // gamma would underflow
      CHECK(qk::latte_margin(gamma_for_margin(margin, g.d, g.sq, g.sk), g.d, g.sq, g.sk) == margin);
    }
  }
  CHECK_THROWS_AS(gamma_for_margin(-1, 4, 1.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(gamma_for_margin(2000, 1, 1.0, 1.0), std::range_error);  // exp(-2000.5) underflows
}

TEST_CASE("calibrate: margin profile of a hand-computed head, with and without reuse-buffer segments") {
  // I8 trace, scales 1, so the values are used as they are (B = 8). d = 1, one query q = 1,
  // keys 20, -16, 64, 35. With P = 4 the estimate keeps the 4 MSB planes: multiples of 16
  // rounded down: 16, -16, 64, 32, and e_j = q * that.
  TempDir dir;
  SafetensorsWriter w;
  w.add_float("layers.0.q", DType::I8, {1, 1, 1}, {1});
  w.add_float("layers.0.k", DType::I8, {1, 4, 1}, {20, -16, 64, 35});
  w.add_float("layers.0.v", DType::I8, {1, 4, 1}, {1, 2, 3, 4});
  for (const char* t : {"q", "k", "v"}) w.set_metadata(std::string("scale.0.") + t, "1");
  const std::string path = dir.file("hand.safetensors");
  w.write(path);
  const Trace trace(path);

  const auto profile_with = [&](int entries) {
    const Config c = config_with({"reuse_buffer.entries=" + std::to_string(entries)});
    auto ctx = std::make_shared<LayerContext>();
    ctx->view = trace.layer(0, 8);
    ctx->margin = {0};
    ctx->theta = {0};
    HeadWork work;
    work.layer = ctx;
    work.head = 0;
    return margin_profile(c.qk_setup(), *make_candidate_generator("all", c.resolved), work, 1);
  };

  // One segment: m = 64, gaps 48, 80, 0, 32.
  const MarginProfile one = profile_with(4096);
  CHECK(one.candidates == 4);
  CHECK(one.gaps == std::vector<int64_t>{0, 32, 48, 80});
  CHECK(one.kept == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(one.filtered_at(0) == 3);
  CHECK(one.filtered_at(31) == 3);
  CHECK(one.filtered_at(32) == 2);
  CHECK(one.filtered_at(79) == 1);
  CHECK(one.filtered_at(80) == 0);
  CHECK(one.filtered_at(1000) == 0);
  CHECK(one.plateau_top(0) == 31);
  CHECK(one.plateau_top(2) == 79);
  CHECK(one.plateau_top(3) == 80);
  // Plateau ratios 0.75, 0.5, 0.25, 0.
  CHECK(one.closest_plateau(0.5) == 1);
  CHECK(one.closest_plateau(0.625) == 1);  // tie between 0.75 and 0.5: the larger margin
  CHECK(one.closest_plateau(0.7) == 0);
  CHECK(one.closest_plateau(0.99) == 0);
  CHECK(one.closest_plateau(0.1) == 3);
  CHECK(one.closest_plateau(0.13) == 2);

  // Segments of 2: [16, -16] against m = 16 -> gaps 0, 32; [64, 32] against m = 64 -> 0, 32.
  const MarginProfile two = profile_with(2);
  CHECK(two.gaps == std::vector<int64_t>{0, 32});
  CHECK(two.kept == std::vector<uint64_t>{2, 4});
  CHECK(two.filtered_at(31) == 2);
  CHECK(two.filtered_at(32) == 0);

  // The profile agrees with the QK unit model (latte_filter inside score_row).
  const Config c = config_with({"reuse_buffer.entries=2"});
  auto ctx = std::make_shared<LayerContext>();
  ctx->view = trace.layer(0, 8);
  ctx->margin = {31};
  ctx->theta = {0};
  HeadWork work;
  work.layer = ctx;
  const auto all = make_candidate_generator("all", c.resolved);
  HeadModel(c.qk_setup(), *all, nullptr, nullptr, 1).compute(work);
  CHECK(work.rows[0].candidates - work.rows[0].survivors == 2);
}

TEST_CASE("calibrate: filtered_ratio=0.85 is reproduced by attnsim run within 0.01 head by head") {
  TempDir dir;
  const std::string trace = write_synth(dir, false);
  const std::string base = dir.file("base.json"), out = dir.file("c2.json");
  std::ofstream(base) << R"({"schema": "attnsim.config/1", "qk_unit": {"lanes": 16}})";

  const Command c = run_attnsim(dir, "calibrate --config " + base + " --trace " + trace +
                                     " --target filtered_ratio=0.85 --out " + out);
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  const nlohmann::json written = read_json(out);
  CHECK(written["qk_unit"]["lanes"] == 16);  // the rest of the config is kept
  CHECK_FALSE(written["comparator"].contains("margin"));
  REQUIRE(written["comparator"]["gamma"].size() == 2);
  REQUIRE(written["comparator"]["gamma"][0].size() == 4);

  const nlohmann::json stats = run_binary(dir, out, trace);
  const double achieved = stats["filter"]["filtered_ratio"].get<double>();
  CHECK(std::abs(achieved - 0.85) <= 0.01);

  // The library gives the same gammas and predicts the run's per-head counts exactly.
  const CalibrationResult r = calibrate(load_config(base), Trace(trace), parse_calibration_target("filtered_ratio=0.85"), 2);
  CHECK(r.config["comparator"]["gamma"] == written["comparator"]["gamma"]);
  CHECK(r.filtered_ratio == achieved);
  CHECK(r.passes == 1);
  require_same_heads(r, stats);
  CHECK(r.rel_error == Approx(stats["quality"]["rel_error"].get<double>()).epsilon(1e-12));
}

TEST_CASE("calibrate: causal trace with reuse-buffer segments gives the same result on any thread count") {
  TempDir dir;
  const std::string trace = write_synth(dir, true);
  const Config config = config_with({"reuse_buffer.entries=16"});
  const CalibrationTarget target = parse_calibration_target("filtered_ratio=0.7");
  const CalibrationResult r = calibrate(config, Trace(trace), target, 1);
  CHECK(std::abs(r.filtered_ratio - 0.7) <= 0.01);
  // Causal: head candidates = 64 * 65 / 2.
  CHECK(r.heads[0][0].candidates == 2080);
  const CalibrationResult r3 = calibrate(config, Trace(trace), target, 3);
  CHECK(r3.config == r.config);

  const std::string out = dir.file("c2.json");
  std::ofstream(out) << r.config.dump(2);
  const nlohmann::json stats = run_binary(dir, out, trace);
  CHECK(stats["filter"]["filtered_ratio"].get<double>() == r.filtered_ratio);
  require_same_heads(r, stats);
}

TEST_CASE("calibrate: rel_error=0.02 keeps every head at or below the target and each locally maximal") {
  TempDir dir;
  const std::string trace_path = write_synth(dir, false);
  const Config config = default_config();
  const CalibrationResult r = calibrate(config, Trace(trace_path), parse_calibration_target("rel_error=0.02"), 2);

  const std::string out = dir.file("c2.json");
  std::ofstream(out) << r.config.dump(2);
  const nlohmann::json stats = run_binary(dir, out, trace_path);
  // The run repeats the calibration's arithmetic, so the only tolerance is summation noise.
  CHECK(stats["quality"]["rel_error"].get<double>() <= 0.02 + 1e-12);
  require_same_heads(r, stats);
  CHECK(stats["filter"]["filtered_ratio"].get<double>() > 0.1);  // it does filter

  // Locally maximal: one plateau less margin (the next more filtering behaviour) exceeds
  // the target, for every head that filters anything at all.
  const Trace trace(trace_path);
  const QkSetup qk = config.qk_setup();
  const auto all = make_candidate_generator("all", config.resolved);
  const ExactAttentionQuality quality;
  const HeadModel model(qk, *all, nullptr, &quality, 1);
  for (const auto& layer : r.heads) {
    auto ctx = std::make_shared<LayerContext>();
    ctx->view = trace.layer(layer[0].layer, 8);
    ctx->margin.assign(ctx->view.heads, 0);
    ctx->theta.assign(ctx->view.heads, 0);
    for (const HeadCalibration& h : layer) {
      CHECK(h.rel_error <= 0.02);
      HeadWork probe;
      probe.layer = ctx;
      probe.head = h.head;
      const MarginProfile p = margin_profile(qk, *all, probe, 1);
      const size_t k = static_cast<size_t>(std::upper_bound(p.gaps.begin(), p.gaps.end(), h.margin) - p.gaps.begin()) - 1;
      CHECK(h.margin == p.plateau_top(k));  // the top of its plateau: the most slack
      if (k == 0) continue;
      ctx->margin[h.head] = p.gaps[k - 1];
      HeadWork w;
      w.layer = ctx;
      w.head = h.head;
      model.compute(w);
      double err = 0, ref = 0;
      for (const RowOutcome& o : w.rows) err += o.err_sq, ref += o.ref_sq;
      INFO("layer " << h.layer << " head " << h.head);
      CHECK(std::sqrt(err / ref) > 0.02);
    }
  }
}

TEST_CASE("calibrate: a head that cannot filter makes a second pass shift the others") {
  // Head 1's keys are all the same vector: every estimate of a row ties, nothing can be
  // filtered. With per-head targets of 0.4 the overall ratio would be 0.2; the second
  // pass raises head 0's target until the overall ratio is within 0.01 of 0.4.
  TempDir dir;
  const int n = 64, d = 16;
  std::mt19937 rng(11);
  std::vector<float> q = random_values(rng, 2 * n * d), k = random_values(rng, 2 * n * d),
                     v = random_values(rng, 2 * n * d);
  for (int j = 0; j < n; ++j)
    for (int t = 0; t < d; ++t) k[(n + j) * d + t] = k[n * d + t];
  SafetensorsWriter w;
  w.add_float("layers.0.q", DType::F32, {2, n, d}, q);
  w.add_float("layers.0.k", DType::F32, {2, n, d}, k);
  w.add_float("layers.0.v", DType::F32, {2, n, d}, v);
  const std::string trace = dir.file("stuck.safetensors");
  w.write(trace);

  const CalibrationResult r = calibrate(default_config(), Trace(trace), parse_calibration_target("filtered_ratio=0.4"), 1);
  CHECK(r.heads[0][1].filtered == 0);
  CHECK(r.heads[0][1].plateaus == 1);
  CHECK(r.passes == 2);
  CHECK(r.target_shift > 0.3);
  CHECK(std::abs(r.filtered_ratio - 0.4) <= 0.01);
  CHECK(r.heads[0][0].filtered_ratio() == Approx(0.8).margin(0.02));

  const std::string out = dir.file("c2.json");
  std::ofstream(out) << r.config.dump(2);
  CHECK(run_binary(dir, out, trace)["filter"]["filtered_ratio"].get<double>() == r.filtered_ratio);
}

TEST_CASE("calibrate: wrong mode or bad target or bad trace: one-line error and no output file") {
  TempDir dir;
  const std::string trace = write_synth(dir, false);
  const std::string out = dir.file("c2.json");

  const Config dense = config_with({"qk_unit.mode=\"dense\""});
  CHECK_THROWS_WITH(calibrate(dense, Trace(trace), parse_calibration_target("filtered_ratio=0.5")),
                    Catch::StartsWith("--set qk_unit.mode:") && Catch::Contains("\"dense\""));

  const std::string dense_json = dir.file("dense.json");
  std::ofstream(dense_json) << R"({"schema": "attnsim.config/1", "qk_unit": {"mode": "early_term"}})";
  const std::vector<std::string> failing = {
      "--config " + dense_json + " --trace " + trace + " --target filtered_ratio=0.85",
      "--trace " + trace + " --target filtered_ratio=1",
      "--trace " + trace + " --target rel_error=0",
      "--trace " + trace + " --target filtered_ratio=abc",
      "--trace " + dir.file("missing.safetensors") + " --target filtered_ratio=0.5",
      "--trace " + trace,
  };
  for (const std::string& args : failing) {
    INFO(args);
    const Command c = run_attnsim(dir, "calibrate " + args + " --out " + out);
    CHECK(c.exit_code != 0);
    CHECK(c.err.rfind("attnsim: ", 0) == 0);
    CHECK(std::count(c.err.begin(), c.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(out));
  }
  const Command mode = run_attnsim(dir, "calibrate " + failing[0] + " --out " + out);
  CHECK_THAT(mode.err, Catch::Contains(dense_json + ": qk_unit.mode:"));
}
