// Synthetic traces: determinism, shapes and metadata, the signature of each head pattern,
// the entropy target, I8 scales, the predictor option, and the `attnsim trace` command line.
#include "workloads/synth.h"

#include "arch/skim_math.h"
#include "sim/cli/commands.h"
#include "tests/workloads/trace_test_files.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

using namespace attnsim;
using attnsim_test::TempDir;

namespace {

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

SynthOptions small_options() {
  SynthOptions o;
  o.layers = 2;
  o.heads = 4;
  o.tokens = 32;
  o.head_dim = 16;
  return o;
}

// Attention probabilities of one head, in double, from the trace's float values: row i
// over the keys it may see (0..i when causal).
std::vector<std::vector<double>> probabilities(const HeadData& h, int n, int d, bool causal) {
  std::vector<std::vector<double>> p(n);
  for (int i = 0; i < n; ++i) {
    const int visible = causal ? i + 1 : n;
    std::vector<double> row(visible);
    double m = -INFINITY;
    for (int j = 0; j < visible; ++j) {
      double dot = 0;
      for (int c = 0; c < d; ++c) dot += double(h.q_float[i * d + c]) * h.k_float[j * d + c];
      row[j] = dot / std::sqrt(double(d));
      m = std::max(m, row[j]);
    }
    double z = 0;
    for (double& x : row) z += (x = std::exp(x - m));
    for (double& x : row) x /= z;
    p[i] = std::move(row);
  }
  return p;
}

int argmax(const std::vector<double>& row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

double entropy(const std::vector<double>& row) {
  double e = 0;
  for (double x : row)
    if (x > 0) e -= x * std::log(x);
  return e;
}

struct Signature {
  double at_diagonal = 0;  // fraction of rows whose argmax is j = i
  double at_previous = 0;  // ... j = i - 1
  double mean_distance = 0;  // mean |argmax - i|
  double top3_mass = 0;    // mean over rows of the three largest probabilities
  double entropy_ratio = 0;  // mean row entropy / mean log(visible keys)
};

Signature signature(const HeadData& h, int n, int d, bool causal) {
  const auto p = probabilities(h, n, d, causal);
  Signature s;
  double entropy_sum = 0, max_sum = 0;
  for (int i = 0; i < n; ++i) {
    const int a = argmax(p[i]);
    s.at_diagonal += a == i;
    s.at_previous += a == i - 1;
    s.mean_distance += std::abs(a - i);
    std::vector<double> sorted = p[i];
    std::sort(sorted.rbegin(), sorted.rend());
    for (size_t t = 0; t < std::min<size_t>(3, sorted.size()); ++t) s.top3_mass += sorted[t];
    entropy_sum += entropy(p[i]);
    max_sum += std::log(double(p[i].size()));
  }
  s.at_diagonal /= n;
  s.at_previous /= n;
  s.mean_distance /= n;
  s.top3_mass /= n;
  s.entropy_ratio = max_sum > 0 ? entropy_sum / max_sum : 0;
  return s;
}

// Runs cmd_trace on `args` (args[0] == "trace"), capturing stdout and stderr.
struct CliResult {
  int code = 0;
  std::string out, err;
};

CliResult run_trace(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  CliResult r;
  r.code = cmd_trace(static_cast<int>(args.size()), argv.data());
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

bool one_error_line(const std::string& err) {
  return err.rfind("attnsim: ", 0) == 0 && std::count(err.begin(), err.end(), '\n') == 1 &&
         err.back() == '\n';
}

}  // namespace

TEST_CASE("pattern names round-trip and unknown names are rejected") {
  for (HeadPattern p : {HeadPattern::Peaked, HeadPattern::Local, HeadPattern::Diagonal,
                        HeadPattern::Uniform})
    CHECK(parse_head_pattern(head_pattern_name(p)) == p);
  CHECK(std::string(head_pattern_name(HeadPattern::Diagonal)) == "diagonal");
  CHECK_THROWS_AS(parse_head_pattern("sparse"), std::invalid_argument);
}

TEST_CASE("same options give identical bytes, another seed gives other bytes") {
  TempDir dir;
  SynthOptions o = small_options();
  write_synthetic_trace(o, dir.file("a.safetensors"));
  write_synthetic_trace(o, dir.file("b.safetensors"));
  o.seed = 2;
  write_synthetic_trace(o, dir.file("c.safetensors"));
  const auto a = file_bytes(dir.file("a.safetensors"));
  REQUIRE(a.size() > 1000);
  CHECK(a == file_bytes(dir.file("b.safetensors")));
  CHECK(a != file_bytes(dir.file("c.safetensors")));
  // Layers differ from each other (own streams, own gains).
  Trace t(dir.file("a.safetensors"));
  CHECK(t.layer(0, 8).head[0].q_float != t.layer(1, 8).head[0].q_float);
  CHECK(t.layer(0, 8).head[0].v_float != t.layer(1, 8).head[0].v_float);
}

TEST_CASE("shapes, dtypes and metadata are as requested") {
  TempDir dir;
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    SynthOptions o = small_options();
    o.layers = 3;
    o.heads = 2;
    o.tokens = 24;
    o.head_dim = 8;
    o.dtype = dtype;
    o.causal = dtype == DType::F16;
    o.seed = 12345678901234567ULL;
    o.patterns = {HeadPattern::Local, HeadPattern::Uniform};
    o.temperature = 0.75;
    o.model = "tiny-test";
    const std::string path = dir.file(std::string(dtype_name(dtype)) + ".safetensors");
    write_synthetic_trace(o, path);
    Trace t(path);
    REQUIRE(t.layers() == 3);
    for (int l = 0; l < 3; ++l) {
      CHECK(t.shape(l).heads == 2);
      CHECK(t.shape(l).n == 24);
      CHECK(t.shape(l).m == 24);
      CHECK(t.shape(l).d == 8);
      CHECK(t.shape(l).dtype == dtype);
    }
    CHECK(t.causal() == o.causal);
    CHECK(t.model() == "tiny-test");
    const auto& md = t.metadata();
    CHECK(md.at("source") == "attnsim trace synth");
    CHECK(md.at("causal") == (o.causal ? "true" : "false"));
    CHECK(md.at("synth.seed") == "12345678901234567");
    CHECK(md.at("synth.patterns") == "local,uniform");
    CHECK(md.at("synth.temperature") == "0.75");
    CHECK(md.at("synth.entropy_target") == "0");
    // q is scaled by 1/temperature in every head.
    CHECK(md.at("synth.q_scale.0") == "1.3333333333333333,1.3333333333333333");
    CHECK(t.file().tensors().size() == 9);  // q, k, v of 3 layers, nothing else
  }
}

TEST_CASE("the default pattern list is all four patterns, cycled over the heads") {
  TempDir dir;
  SynthOptions o = small_options();
  o.heads = 6;
  write_synthetic_trace(o, dir.file("t.safetensors"));
  Trace t(dir.file("t.safetensors"));
  CHECK(t.metadata().at("synth.patterns") == "peaked,local,diagonal,uniform");
  CHECK(t.shape(0).heads == 6);
}

TEST_CASE("each head pattern has its signature in the attention probabilities") {
  TempDir dir;
  for (bool causal : {false, true}) {
    SynthOptions o;
    o.layers = 2;
    o.heads = 8;  // each pattern twice per layer
    o.tokens = 64;
    o.head_dim = 32;
    o.dtype = DType::F32;
    o.causal = causal;
    const std::string path = dir.file(causal ? "causal.safetensors" : "full.safetensors");
    write_synthetic_trace(o, path);
    Trace t(path);
    for (int l = 0; l < t.layers(); ++l) {
      const LayerView v = t.layer(l, 8);
      for (int h = 0; h < v.heads; ++h) {
        INFO("causal " << causal << ", layer " << l << ", head " << h);
        const Signature s = signature(v.head[h], v.n, v.d, causal);
        switch (h % 4) {
          case 0:  // peaked: a few keys hold the mass, anywhere in the row
            CHECK(s.top3_mass > 0.75);
            CHECK(s.mean_distance > 8);
            break;
          case 1:  // local: the argmax is near the query
            CHECK(s.mean_distance < 3);
            CHECK(s.entropy_ratio < 0.8);
            break;
          case 2:  // diagonal: the argmax is i (or i-1 for previous-token heads)
            CHECK(std::max(s.at_diagonal, s.at_previous) > 0.9);
            CHECK(s.top3_mass > 0.85);
            break;
          case 3:  // uniform: entropy near log M
            CHECK(s.entropy_ratio > 0.95);
            CHECK(s.top3_mass < 0.25);
            break;
        }
      }
    }
  }
}

TEST_CASE("both kinds of diagonal head occur: self and previous token") {
  TempDir dir;
  SynthOptions o = small_options();
  o.tokens = 48;
  o.head_dim = 32;
  o.dtype = DType::F32;
  o.patterns = {HeadPattern::Diagonal};
  o.heads = 2;
  o.layers = 1;
  write_synthetic_trace(o, dir.file("t.safetensors"));
  const LayerView v = Trace(dir.file("t.safetensors")).layer(0, 8);
  const Signature self = signature(v.head[0], v.n, v.d, false);
  const Signature previous = signature(v.head[1], v.n, v.d, false);
  CHECK(self.at_diagonal > 0.9);
  CHECK(previous.at_previous > 0.9);
}

TEST_CASE("temperature divides the logits: q is scaled by 1/temperature, k and v unchanged") {
  TempDir dir;
  SynthOptions o = small_options();
  o.dtype = DType::F32;
  write_synthetic_trace(o, dir.file("t1.safetensors"));
  o.temperature = 2.0;  // 1/2 is exact in float, so the comparison can be exact
  write_synthetic_trace(o, dir.file("t2.safetensors"));
  Trace a(dir.file("t1.safetensors")), b(dir.file("t2.safetensors"));
  const LayerView va = a.layer(1, 8), vb = b.layer(1, 8);
  for (int h = 0; h < va.heads; ++h) {
    std::vector<float> halved = va.head[h].q_float;
    for (float& x : halved) x *= 0.5f;
    CHECK(vb.head[h].q_float == halved);
    CHECK(vb.head[h].k_float == va.head[h].k_float);
    CHECK(vb.head[h].v_float == va.head[h].v_float);
  }
  // Flatter: the peaked head's entropy rises.
  CHECK(signature(vb.head[0], vb.n, vb.d, false).entropy_ratio >
        signature(va.head[0], va.n, va.d, false).entropy_ratio + 0.05);
}

TEST_CASE("entropy target: every head's mean row entropy is the fraction of its maximum") {
  TempDir dir;
  for (bool causal : {false, true}) {
    for (DType dtype : {DType::F32, DType::F16}) {
      SynthOptions o;
      o.layers = 1;
      o.heads = 4;
      o.tokens = 48;
      o.head_dim = 32;
      o.dtype = dtype;
      o.causal = causal;
      o.entropy_target = causal ? 0.3 : 0.6;
      const std::string path = dir.file("e.safetensors");
      write_synthetic_trace(o, path);
      const LayerView v = Trace(path).layer(0, 8);
      for (int h = 0; h < v.heads; ++h) {
        INFO("causal " << causal << ", dtype " << dtype_name(dtype) << ", head " << h);
        const double ratio = signature(v.head[h], v.n, v.d, causal).entropy_ratio;
        CHECK(std::fabs(ratio - o.entropy_target) <= 0.01 * o.entropy_target);
      }
    }
  }
}

TEST_CASE("an unreachable or invalid option is rejected before anything is written") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  auto rejected = [&](SynthOptions o) {
    CHECK_THROWS_AS(write_synthetic_trace(o, path), std::invalid_argument);
    CHECK_FALSE(std::filesystem::exists(path));
  };
  SynthOptions o = small_options();
  o.tokens = 0;
  rejected(o);
  o = small_options();
  o.heads = 0;
  rejected(o);
  o = small_options();
  o.head_dim = 0;
  rejected(o);
  o = small_options();
  o.tokens = 1000001;
  rejected(o);
  o = small_options();
  o.temperature = 0;
  rejected(o);
  o = small_options();
  o.entropy_target = 1.0;
  rejected(o);
  o = small_options();
  o.dtype = DType::U8;
  rejected(o);
  // Causal with one token: the only row has one key, its entropy is always 0.
  o = small_options();
  o.tokens = 1;
  o.causal = true;
  o.entropy_target = 0.5;
  rejected(o);
  // Too cold for F16: q overflows 65504.
  o = small_options();
  o.temperature = 1e-5;
  rejected(o);
}

TEST_CASE("I8 traces: one scale per layer and tensor in the metadata, close to the floats") {
  TempDir dir;
  SynthOptions o = small_options();
  o.dtype = DType::F32;
  write_synthetic_trace(o, dir.file("f.safetensors"));
  o.dtype = DType::I8;
  write_synthetic_trace(o, dir.file("i.safetensors"));
  SafetensorsFile f(dir.file("f.safetensors")), i8(dir.file("i.safetensors"));
  for (int l = 0; l < o.layers; ++l) {
    for (const char* which : {"q", "k", "v"}) {
      const std::string name = "layers." + std::to_string(l) + "." + which;
      INFO(name);
      CHECK(i8.info(name).dtype == DType::I8);
      const std::vector<float> x = f.read_float(name), xq = i8.read_float(name);
      REQUIRE(x.size() == xq.size());
      double max_abs = 0;
      for (float v : x) max_abs = std::max(max_abs, std::fabs(double(v)));
      const std::string text = i8.metadata().at("scale." + std::to_string(l) + "." + which);
      const double scale = std::strtod(text.c_str(), nullptr);
      CHECK(scale == max_abs / 127);  // the decimal text round-trips exactly
      double worst = 0;
      int at_max = 0;
      for (size_t e = 0; e < x.size(); ++e) {
        worst = std::max(worst, std::fabs(xq[e] * scale - x[e]));
        at_max += std::fabs(xq[e]) == 127;
      }
      CHECK(worst <= scale / 2 * (1 + 1e-9));
      CHECK(at_max >= 1);
    }
  }
  // The Trace accepts it and uses the I8 values as they are at 8 bits.
  Trace t(dir.file("i.safetensors"));
  CHECK(t.shape(0).dtype == DType::I8);
  CHECK(t.layer(0, 8).head[0].scale_q ==
        std::strtod(t.metadata().at("scale.0.q").c_str(), nullptr));
}

TEST_CASE("attnsim trace synth writes a trace, info describes it as text and JSON") {
  TempDir dir;
  const std::string path = dir.file("cli.safetensors");
  CliResult r = run_trace({"trace", "synth", "--out", path, "--layers", "3", "--heads", "2",
                           "--tokens", "16", "--head-dim", "8", "--seed", "7", "--dtype", "bf16",
                           "--causal", "--patterns", "diagonal,peaked", "--model", "toy"});
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());
  Trace t(path);
  CHECK(t.layers() == 3);
  CHECK(t.shape(2).heads == 2);
  CHECK(t.shape(2).n == 16);
  CHECK(t.shape(2).d == 8);
  CHECK(t.shape(2).dtype == DType::BF16);
  CHECK(t.causal());
  CHECK(t.model() == "toy");
  CHECK(t.metadata().at("synth.patterns") == "diagonal,peaked");
  CHECK(t.metadata().at("synth.seed") == "7");

  // The same options through the library give the same bytes.
  SynthOptions o;
  o.layers = 3;
  o.heads = 2;
  o.tokens = 16;
  o.head_dim = 8;
  o.seed = 7;
  o.dtype = DType::BF16;
  o.causal = true;
  o.patterns = {HeadPattern::Diagonal, HeadPattern::Peaked};
  o.model = "toy";
  write_synthetic_trace(o, dir.file("lib.safetensors"));
  CHECK(file_bytes(path) == file_bytes(dir.file("lib.safetensors")));

  r = run_trace({"trace", "info", path});
  REQUIRE(r.code == 0);
  CHECK(r.out == describe_trace(t));

  r = run_trace({"trace", "info", path, "--json"});
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j.at("model") == "toy");
  CHECK(j.at("causal") == true);
  CHECK(j.at("sha256") == t.sha256());
  REQUIRE(j.at("layers").size() == 3);
  CHECK(j.at("layers")[1].at("heads") == 2);
  CHECK(j.at("layers")[1].at("n") == 16);
  CHECK(j.at("layers")[1].at("d") == 8);
  CHECK(j.at("layers")[1].at("dtype") == "BF16");
  CHECK(j.at("tensors").at("layers.0.q").at("shape") == nlohmann::json::array({2, 16, 8}));
  CHECK(j.at("metadata").at("source") == "attnsim trace synth");
}

TEST_CASE("attnsim trace help texts, synth defaults come from SynthOptions") {
  CliResult r = run_trace({"trace", "--help"});
  CHECK(r.code == 0);
  CHECK(r.out.find("synth") != std::string::npos);
  CHECK(r.out.find("info") != std::string::npos);

  r = run_trace({"trace", "synth", "--help"});
  CHECK(r.code == 0);
  const SynthOptions defaults;
  CHECK(r.out.find("--tokens arg (=" + std::to_string(defaults.tokens) + ")") != std::string::npos);
  CHECK(r.out.find("--head-dim arg (=" + std::to_string(defaults.head_dim) + ")") !=
        std::string::npos);
  CHECK(r.out.find("--dtype arg (=f16)") != std::string::npos);
  CHECK(r.out.find("--patterns arg (=peaked,local,diagonal,uniform)") != std::string::npos);
  CHECK(r.out.find("--model arg (=synthetic)") != std::string::npos);

  r = run_trace({"trace", "info", "--help"});
  CHECK(r.code == 0);
  CHECK(r.out.find("--json") != std::string::npos);

  r = run_trace({"trace"});
  CHECK(r.code == 2);
}

TEST_CASE("attnsim trace errors: one line on stderr, exit 2 (usage), 4 (trace) or 6 (I/O), no file written") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const std::vector<std::vector<std::string>> bad = {
      {"trace", "synth", "--out", path, "--dtype", "f64"},
      {"trace", "synth", "--out", path, "--tokens", "0"},
      {"trace", "synth", "--out", path, "--tokens", "many"},
      {"trace", "synth", "--out", path, "--tokens", "1000001"},
      {"trace", "synth", "--out", path, "--head-dim", "0"},
      {"trace", "synth", "--out", path, "--layers", "-1"},
      {"trace", "synth", "--out", path, "--patterns", "peaked,sparse"},
      {"trace", "synth", "--out", path, "--patterns", ""},
      {"trace", "synth", "--out", path, "--seed", "-1"},
      {"trace", "synth", "--out", path, "--temperature", "0"},
      {"trace", "synth", "--out", path, "--entropy-target", "1.5"},
      {"trace", "synth", "--out", path, "--bogus"},
      {"trace", "synth", "--out", path, "extra"},
      {"trace", "synth"},
      {"trace", "frobnicate"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    INFO(joined);
    const CliResult r = run_trace(args);
    CHECK(r.code == 2);
    CHECK(one_error_line(r.err));
    CHECK(r.out.empty());
    CHECK_FALSE(std::filesystem::exists(path));
  }
  // A bad dtype names the option.
  CHECK(run_trace(bad[0]).err.find("--dtype") != std::string::npos);
  // Unwritable output: the writer's TraceError, printed as it is.
  const CliResult r = run_trace({"trace", "synth", "--out", dir.file("no/such/dir/t.safetensors")});
  CHECK(r.code == 6);
  CHECK(one_error_line(r.err));

  // info: missing file, not a trace, missing argument.
  CHECK(run_trace({"trace", "info", dir.file("absent.safetensors")}).code == 6);
  {
    std::ofstream junk(dir.file("junk.safetensors"));
    junk << "not a trace";
  }
  const CliResult junk = run_trace({"trace", "info", dir.file("junk.safetensors")});
  CHECK(junk.code == 4);
  CHECK(one_error_line(junk.err));
  CHECK(junk.err.find("junk.safetensors") != std::string::npos);
  CHECK(run_trace({"trace", "info"}).code == 2);
}

// ---------------------------------------------------------------------------------------
// --predictor: hidden states and Transkimmer predictor weights

namespace {

SynthOptions predictor_options() {
  SynthOptions o;
  o.layers = 4;
  o.heads = 2;
  o.tokens = 40;
  o.head_dim = 8;  // D = 16
  o.seed = 5;
  o.predictor = true;
  return o;
}

// Tokens each layer processes when the predictor's decisions (skim::predictor_keep on the
// trace's hidden states and weights) are applied cumulatively, token 0 always kept.
std::vector<int> predictor_survivors(const Trace& t) {
  skim::TokenMap active = skim::identity_map(t.shape(0).n);
  std::vector<int> counts;
  for (int l = 0; l < t.layers(); ++l) {
    std::vector<int32_t> ids;
    for (const auto& token : active) ids.push_back(token.original);
    const std::vector<float> hidden = t.hidden_rows(l, ids);
    const auto keep = skim::predictor_keep(hidden.data(), static_cast<int>(ids.size()), t.predictor(l));
    active = skim::surviving_tokens(active, skim::cumulative_keep_active(active, keep));
    counts.push_back(static_cast<int>(active.size()));
  }
  return counts;
}

// 1 + round(f (n - 1)) per layer, n the tokens reaching it (round half away from zero).
std::vector<int> documented_survivors(int tokens, int layers, double f) {
  std::vector<int> counts;
  int n = tokens;
  for (int l = 0; l < layers; ++l) {
    n = 1 + static_cast<int>(std::lround(f * (n - 1)));
    counts.push_back(n);
  }
  return counts;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace

TEST_CASE("predictor option writes hidden states and all eight predictor tensors per layer") {
  TempDir dir;
  SynthOptions o = predictor_options();
  write_synthetic_trace(o, dir.file("p.safetensors"));
  const Trace t(dir.file("p.safetensors"));  // the trace reader validates shapes and dtypes
  const int d = o.heads * o.head_dim;
  for (int l = 0; l < o.layers; ++l) {
    INFO("layer " << l);
    const std::string p = "layers." + std::to_string(l) + ".";
    CHECK(t.has_hidden(l));
    CHECK(t.hidden_size(l) == d);
    CHECK(t.has_predictor(l));
    const TensorInfo& hidden = t.file().info(p + "hidden");
    CHECK(hidden.dtype == DType::F16);  // the trace's float dtype
    CHECK(hidden.shape == std::vector<int64_t>({o.tokens, d}));
    CHECK(t.file().info(p + "skim_predictor.fc1.weight").shape == std::vector<int64_t>({d, d}));
    CHECK(t.file().info(p + "skim_predictor.fc2.weight").shape == std::vector<int64_t>({2, d}));
    CHECK(t.file().info(p + "skim_predictor.fc2.bias").dtype == DType::F32);
    CHECK(t.predictor(l).d_model == d);
  }
  CHECK(t.metadata().at("synth.predictor_keep") == "0.75");

  // Deterministic; q, k and v are the same as without --predictor.
  write_synthetic_trace(o, dir.file("p2.safetensors"));
  CHECK(file_bytes(dir.file("p.safetensors")) == file_bytes(dir.file("p2.safetensors")));
  SynthOptions plain = o;
  plain.predictor = false;
  write_synthetic_trace(plain, dir.file("plain.safetensors"));
  const Trace u(dir.file("plain.safetensors"));
  CHECK_FALSE(u.has_hidden(0));
  CHECK_FALSE(u.has_predictor(0));
  CHECK(u.metadata().count("synth.predictor_keep") == 0);
  for (int l = 0; l < o.layers; ++l)
    for (const char* which : {"q", "k", "v"}) {
      const std::string name = "layers." + std::to_string(l) + "." + which;
      CHECK(t.file().read_float(name) == u.file().read_float(name));
    }
  // Another seed, other hidden states.
  o.seed = 6;
  write_synthetic_trace(o, dir.file("p3.safetensors"));
  CHECK(Trace(dir.file("p3.safetensors")).hidden_rows(0, {1}) != t.hidden_rows(0, {1}));

  // I8 traces get F32 hidden states; F32 traces too.
  o.dtype = DType::I8;
  write_synthetic_trace(o, dir.file("i8.safetensors"));
  CHECK(Trace(dir.file("i8.safetensors")).file().info("layers.0.hidden").dtype == DType::F32);
}

TEST_CASE("predictor keeps 1 + round(f (n - 1)) of the tokens reaching each layer") {
  TempDir dir;
  for (double f : {0.0, 0.3, 0.5, 0.75, 0.9, 1.0}) {
    INFO("predictor_keep " << f);
    SynthOptions o = predictor_options();
    o.predictor_keep = f;
    write_synthetic_trace(o, dir.file("k.safetensors"));
    const Trace t(dir.file("k.safetensors"));
    CHECK(predictor_survivors(t) == documented_survivors(o.tokens, o.layers, f));
  }
  // 0.75: 40 -> 1 + round(29.25) = 30 -> 1 + round(21.75) = 23 -> 1 + round(16.5) = 18
  // -> 1 + round(12.75) = 14.
  CHECK(documented_survivors(40, 4, 0.75) == std::vector<int>({30, 23, 18, 14}));
  // Also with BF16 and F32 hidden states and a causal trace.
  for (DType dtype : {DType::BF16, DType::F32}) {
    SynthOptions o = predictor_options();
    o.dtype = dtype;
    o.causal = true;
    write_synthetic_trace(o, dir.file("c.safetensors"));
    CHECK(predictor_survivors(Trace(dir.file("c.safetensors"))) ==
          documented_survivors(o.tokens, o.layers, 0.75));
  }
}

TEST_CASE("the predictor's logit difference follows the hidden-state feature fc1 row 0 reads") {
  // Documented construction: fc1 rows 0 and 1 are +-3 r, and logit_keep - logit_skim is
  // about GELU(y0) - GELU(y1), increasing in f = fc1[0] . LN1(h). Over all tokens of a
  // layer the logit difference and f are strongly correlated, and the hidden states have a
  // spread of token norms.
  TempDir dir;
  SynthOptions o = predictor_options();
  o.tokens = 200;
  o.dtype = DType::F32;
  write_synthetic_trace(o, dir.file("f.safetensors"));
  const Trace t(dir.file("f.safetensors"));
  const int d = o.heads * o.head_dim;
  std::vector<int32_t> ids(o.tokens);
  for (int i = 0; i < o.tokens; ++i) ids[i] = i;
  for (int l = 0; l < o.layers; ++l) {
    INFO("layer " << l);
    const skim::PredictorWeights w = t.predictor(l);
    for (int i = 0; i < d; ++i) CHECK(w.fc1_w[i] == -w.fc1_w[d + i]);
    const std::vector<float> h = t.hidden_rows(l, ids);
    const std::vector<double> logits = skim::predictor_logits(h.data(), o.tokens, w);
    std::vector<double> feature, difference, norms;
    for (int r = 0; r < o.tokens; ++r) {
      const float* row = h.data() + size_t(r) * d;
      double mean = 0, var = 0, norm2 = 0;
      for (int c = 0; c < d; ++c) mean += row[c] / double(d), norm2 += double(row[c]) * row[c];
      for (int c = 0; c < d; ++c) var += (row[c] - mean) * (row[c] - mean) / d;
      double f = 0;
      for (int c = 0; c < d; ++c)
        f += w.fc1_w[c] * ((row[c] - mean) / std::sqrt(var + 1e-5) * w.ln1_w[c] + w.ln1_b[c]);
      feature.push_back(f);
      difference.push_back(logits[2 * r + 1] - logits[2 * r]);
      norms.push_back(std::sqrt(norm2));
    }
    CHECK(pearson(feature, difference) > 0.9);
    const auto range = std::minmax_element(norms.begin(), norms.end());
    CHECK(*range.second / *range.first > 1.5);
  }
}

TEST_CASE("attnsim trace synth --predictor matches the library; bad predictor options fail") {
  TempDir dir;
  const std::string path = dir.file("cli.safetensors");
  CliResult r = run_trace({"trace", "synth", "--out", path, "--layers", "2", "--heads", "2",
                           "--tokens", "12", "--head-dim", "4", "--seed", "3", "--predictor",
                           "--predictor-keep", "0.5"});
  REQUIRE(r.code == 0);
  SynthOptions o;
  o.layers = 2;
  o.heads = 2;
  o.tokens = 12;
  o.head_dim = 4;
  o.seed = 3;
  o.predictor = true;
  o.predictor_keep = 0.5;
  write_synthetic_trace(o, dir.file("lib.safetensors"));
  CHECK(file_bytes(path) == file_bytes(dir.file("lib.safetensors")));

  r = run_trace({"trace", "synth", "--help"});
  CHECK(r.out.find("--predictor-keep arg (=0.75)") != std::string::npos);

  const std::string bad_path = dir.file("bad.safetensors");
  const std::vector<std::vector<std::string>> bad = {
      {"trace", "synth", "--out", bad_path, "--predictor", "--predictor-keep", "1.5"},
      {"trace", "synth", "--out", bad_path, "--predictor", "--predictor-keep=-0.1"},
      {"trace", "synth", "--out", bad_path, "--predictor", "--heads", "1", "--head-dim", "1"},
      {"trace", "synth", "--out", bad_path, "--predictor", "--heads", "64", "--head-dim", "256"},
      {"trace", "synth", "--out", bad_path, "--predictor", "--tokens", "100000", "--heads", "16",
       "--head-dim", "64"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    INFO(joined);
    const CliResult e = run_trace(args);
    CHECK(e.code == 2);
    CHECK(one_error_line(e.err));
    CHECK(e.err.find("predictor") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(bad_path));
  }
}
