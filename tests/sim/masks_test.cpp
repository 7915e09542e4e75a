// `attnsim run --masks`: which keys each query row had as candidates (codes 1 and 2) and
// which survived the comparator (2), per layer and head, driven through the command line
// (every run is its own process). Hand cases whose every code is derived in the comments,
// and generator / skim runs whose masks must add up to the stats' per-head counts.
#include "tests/support/cli.h"
#include "workloads/safetensors.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using attnsim::DType;
using attnsim::test::CliResult;
using attnsim::test::count_lines;
using attnsim::test::run_attnsim;
using nlohmann::json;

namespace {

fs::path scratch() { return attnsim::test::scratch_dir("masks"); }

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A masks file read independently of the simulator's reader (which accepts no I32): the
// header's JSON and each tensor's bytes, as any safetensors library sees them.
struct Tensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
struct MasksFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;

  std::vector<int32_t> tokens(int l) const {
    const Tensor& t = tensors.at("layers." + std::to_string(l) + ".tokens");
    REQUIRE(t.dtype == "I32");
    REQUIRE(t.shape.size() == 1);
    std::vector<int32_t> out(t.shape[0]);
    REQUIRE(t.bytes.size() == out.size() * 4);
    std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
    return out;
  }
  const Tensor& keep(int l) const {
    const Tensor& t = tensors.at("layers." + std::to_string(l) + ".keep");
    REQUIRE(t.dtype == "U8");
    REQUIRE(t.shape.size() == 3);
    REQUIRE(t.bytes.size() == static_cast<size_t>(t.shape[0] * t.shape[1] * t.shape[2]));
    return t;
  }
  // keep[h] as rows of codes.
  std::vector<std::vector<int>> head(int l, int h) const {
    const Tensor& t = keep(l);
    const int64_t n = t.shape[1], m = t.shape[2];
    std::vector<std::vector<int>> rows(n, std::vector<int>(m));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) rows[i][j] = static_cast<uint8_t>(t.bytes[(h * n + i) * m + j]);
    return rows;
  }
};

MasksFile read_masks(const fs::path& path) {
  const std::string file = slurp(path);
  REQUIRE(file.size() >= 8);
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(file[i]);
  const json header = json::parse(file.substr(8, len));
  MasksFile out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      out.metadata = it->get<std::map<std::string, std::string>>();
      continue;
    }
    const uint64_t begin = (*it)["data_offsets"][0], end = (*it)["data_offsets"][1];
    out.tensors[it.key()] = {(*it)["dtype"], (*it)["shape"].get<std::vector<int64_t>>(),
                             file.substr(8 + len + begin, end - begin)};
  }
  return out;
}

// The hand-made trace: L layers, 2 heads holding the same data, N = M = 4, d = 2. Every
// tensor of a head has an element of magnitude 127 (in token 0, which no skimming drops),
// so the quantization scale is 1 and the quantized values are these numbers (B = 8).
//   q: q0 = (127, 0), q1 = (0, 127), q2 = (127, 127), q3 = (-127, 0)
//   k: k0 = (127, 0), k1 = (100, 32), k2 = (0, 127), k3 = (-20, -50)
// LATTE's estimate uses K truncated to its P = 4 most significant planes, floor(k / 16) * 16:
//   k0 -> (112, 0), k1 -> (96, 32), k2 -> (0, 112), k3 -> (-32, -64)
// so the estimates e_ij, in units of 127, are
//   row 0: 112, 96, 0, -32     row 1: 0, 32, 112, -64
//   row 2: 112, 128, 112, -96  row 3: -112, -96, 0, 32
// and the exact scores s_ij, in units of 127,
//   row 0: 127, 100, 0, -20    row 1: 0, 32, 127, -50
//   row 2: 127, 132, 127, -70  row 3: -127, -100, 0, 20
std::string hand_trace(const std::string& name, bool causal, int layers = 1,
                       const std::vector<std::vector<float>>& skim_keep = {}) {
  const std::vector<float> q = {127, 0, 0, 127, 127, 127, -127, 0};
  const std::vector<float> k = {127, 0, 100, 32, 0, 127, -20, -50};
  const std::vector<float> v = {127, 1, 2, 3, 4, 5, 6, 7};
  auto two_heads = [](std::vector<float> x) {
    x.insert(x.end(), x.begin(), x.end());
    return x;
  };
  attnsim::SafetensorsWriter w;
  for (int l = 0; l < layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    w.add_float(p + "q", DType::F32, {2, 4, 2}, two_heads(q));
    w.add_float(p + "k", DType::F32, {2, 4, 2}, two_heads(k));
    w.add_float(p + "v", DType::F32, {2, 4, 2}, two_heads(v));
    if (!skim_keep.empty()) w.add_float(p + "skim_keep", DType::U8, {4}, skim_keep.at(l));
  }
  w.set_metadata("model", "hand");
  w.set_metadata("causal", causal ? "true" : "false");
  const std::string path = (scratch() / (name + ".safetensors")).string();
  w.write(path);
  return path;
}

struct Run {
  json stats;
  MasksFile masks;
  fs::path masks_path;
};

Run run_masks(const std::string& trace, const std::string& extra, const std::string& name) {
  const fs::path out = scratch() / (name + ".stats.json");
  const fs::path masks = scratch() / (name + ".masks.safetensors");
  const CliResult r = run_attnsim("run -q -j 2 --trace " + trace + " --out " + out.string() + " --masks " +
                                  masks.string() + " " + extra);
  INFO(r.out);
  REQUIRE(r.code == 0);
  return {json::parse(slurp(out)), read_masks(masks), masks};
}

using Rows = std::vector<std::vector<int>>;

// Per (layer, head): codes 1 and 2 count the candidates, code 1 the filtered keys.
void check_against_stats(const Run& run) {
  const json& by_layer = run.stats["filter"]["by_layer"];
  for (size_t l = 0; l < by_layer.size(); ++l) {
    const json& by_head = by_layer[l]["by_head"];
    for (size_t h = 0; h < by_head.size(); ++h) {
      INFO("layer " << l << " head " << h);
      uint64_t candidates = 0, filtered = 0;
      for (const auto& row : run.masks.head(static_cast<int>(l), static_cast<int>(h)))
        for (const int code : row) {
          REQUIRE(code <= 2);
          candidates += code != 0;
          filtered += code == 1;
        }
      CHECK(candidates == by_head[h]["candidate_keys"].get<uint64_t>());
      CHECK(filtered == by_head[h]["filtered_keys"].get<uint64_t>());
    }
  }
}

const std::string kLatteMargins = "--set qk_unit.mode=latte --set 'comparator.margin=[2540,0]'";

}  // namespace

TEST_CASE("LATTE with a margin per head: the masks derived by hand") {
  // Head 0: T = 2540 = 20 x 127, so key j survives iff max_j e_ij - e_ij <= 20 (units of
  // 127): row 0 keeps {0, 1} (differences 0, 16, 112, 144), row 1 {2} (112, 80, 0, 176),
  // row 2 {0, 1, 2} (16, 0, 16, 224), row 3 {3} (144, 128, 32, 0).
  // Head 1: T = 0 keeps only each row's maximum: 0, 2, 1, 3.
  const Run run = run_masks(hand_trace("latte", false), kLatteMargins, "latte");
  CHECK(run.masks.tokens(0) == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(run.masks.keep(0).shape == std::vector<int64_t>{2, 4, 4});
  CHECK(run.masks.head(0, 0) == Rows{{2, 2, 1, 1}, {1, 1, 2, 1}, {2, 2, 2, 1}, {1, 1, 1, 2}});
  CHECK(run.masks.head(0, 1) == Rows{{2, 1, 1, 1}, {1, 1, 2, 1}, {1, 2, 1, 1}, {1, 1, 1, 2}});
  check_against_stats(run);
  CHECK(run.stats["filter"]["by_layer"][0]["by_head"][0]["filtered_keys"] == 9);

  const auto& meta = run.masks.metadata;
  CHECK(meta.at("source") == "attnsim run --masks");
  CHECK(meta.at("trace") == run.stats["trace"]["path"]);
  CHECK(meta.at("trace_sha256") == run.stats["trace"]["sha256"]);
  CHECK(meta.at("qk_unit.mode") == "latte");
  CHECK(meta.at("candidates.source") == "all");
  CHECK(meta.at("skim_controller.mode") == "off");
  CHECK(meta.at("encoding").find("2 = a candidate it kept") != std::string::npos);
  CHECK(meta.count("keep") == 0);
}

TEST_CASE("a causal trace: keys after the query are not candidates") {
  // C_i = {0..i}; the running maximum is over the row's candidates (one segment).
  // Head 0 (T = 20 x 127): row 0 {0}; row 1 estimates 0, 32: keeps {1} (32 > 20);
  // row 2 estimates 112, 128, 112: keeps all three; row 3 as without causality.
  // Head 1 (T = 0): the maxima 0, 1, 1, 3.
  const Run run = run_masks(hand_trace("causal", true), kLatteMargins, "causal");
  CHECK(run.masks.head(0, 0) == Rows{{2, 0, 0, 0}, {1, 2, 0, 0}, {2, 2, 2, 0}, {1, 1, 1, 2}});
  CHECK(run.masks.head(0, 1) == Rows{{2, 0, 0, 0}, {1, 2, 0, 0}, {1, 2, 1, 0}, {1, 1, 1, 2}});
  check_against_stats(run);
}

TEST_CASE("early termination: a key survives iff its exact score reaches theta") {
  // A key stopped early has p_b + u_b < theta, an upper bound of s_ij; one that finishes
  // survives iff s_ij >= theta. So the survivors are exactly {j : s_ij >= theta}.
  // Head 0, theta = 50 x 127: row 0 {0, 1}, row 1 {2}, row 2 {0, 1, 2}, row 3 none (its
  // output is zeros). Head 1, theta = 0: rows 0-2 {0, 1, 2}, row 3 {2, 3} (0 and 20).
  const Run run =
      run_masks(hand_trace("early", false), "--set qk_unit.mode=early_term --set 'comparator.theta=[6350,0]'", "early");
  CHECK(run.masks.head(0, 0) == Rows{{2, 2, 1, 1}, {1, 1, 2, 1}, {2, 2, 2, 1}, {1, 1, 1, 1}});
  CHECK(run.masks.head(0, 1) == Rows{{2, 2, 2, 1}, {2, 2, 2, 1}, {2, 2, 2, 1}, {1, 1, 2, 2}});
  CHECK(run.masks.metadata.at("qk_unit.mode") == "early_term");
  check_against_stats(run);
}

TEST_CASE("Transkimmer masks from the trace: rows and keys are the active tokens") {
  // Layer 0's mask drops token 2 before layer 0: its view is tokens 0, 1, 3. Layer 1's
  // mask drops token 1 (and token 2 stays dropped): tokens 0, 3.
  // Layer 0, head 0 (T = 20 x 127) over keys 0, 1, 3: row of token 0 estimates 112, 96,
  // -32 -> keeps 0, 1; token 1: 0, 32, -64 -> keeps 1; token 3: -112, -96, 32 -> keeps 3.
  // Head 1 (T = 0) keeps the maxima, the same except token 0 keeps only 0.
  // Layer 1: token 0: 112, -32 -> 0; token 3: -112, 32 -> 3, in both heads.
  const std::string trace = hand_trace("skim", false, 2, {{1, 1, 0, 1}, {1, 0, 1, 1}});
  const Run run = run_masks(trace, kLatteMargins + " --set skim_controller.mode=transkimmer", "skim");
  CHECK(run.stats["skim"]["active_tokens"] == json::array({3, 2}));
  CHECK(run.masks.tokens(0) == std::vector<int32_t>{0, 1, 3});
  CHECK(run.masks.tokens(1) == std::vector<int32_t>{0, 3});
  CHECK(run.masks.keep(0).shape == std::vector<int64_t>{2, 3, 3});
  CHECK(run.masks.keep(1).shape == std::vector<int64_t>{2, 2, 2});
  CHECK(run.masks.head(0, 0) == Rows{{2, 2, 1}, {1, 2, 1}, {1, 1, 2}});
  CHECK(run.masks.head(0, 1) == Rows{{2, 1, 1}, {1, 2, 1}, {1, 1, 2}});
  CHECK(run.masks.head(1, 0) == Rows{{2, 1}, {1, 2}});
  CHECK(run.masks.head(1, 1) == Rows{{2, 1}, {1, 2}});
  CHECK(run.masks.metadata.at("skim_controller.mode") == "transkimmer");
  check_against_stats(run);
  // Only the parent wrote (the no-skim child records nothing): one masks file, no leftovers.
  int masks_files = 0;
  for (const auto& e : fs::directory_iterator(scratch()))
    masks_files += e.path().filename().string().rfind("skim.masks", 0) == 0;
  CHECK(masks_files == 1);
}

namespace {

// 2 layers x 2 heads, 48 tokens, d = 16, with trees and LSH directions in the trace.
std::string synth_trace(const std::string& name, bool causal) {
  const fs::path t = scratch() / (name + ".safetensors");
  const CliResult r = run_attnsim("trace synth --out " + t.string() +
                                  " --layers 2 --heads 2 --tokens 48 --head-dim 16 --seed 3 --trees 3 --lsh 2" +
                                  (causal ? " --causal" : ""));
  REQUIRE(r.code == 0);
  return t.string();
}

uint64_t count_code(const MasksFile& masks, int l, int code) {
  uint64_t n = 0;
  for (const char c : masks.keep(l).bytes) n += static_cast<uint8_t>(c) == code;
  return n;
}

}  // namespace

TEST_CASE("tree and LSH generators with LATTE: non-candidates are zeros, counts match the stats") {
  for (const bool causal : {false, true}) {
    const std::string trace = synth_trace(causal ? "gen-causal" : "gen", causal);
    for (const char* source : {"tree", "lsh"}) {
      INFO(source << (causal ? " causal" : ""));
      const std::string name = std::string(source) + (causal ? "-causal" : "");
      // Clusters of 8 of the 48 tokens (the default 64 would hold them all).
      const Run run = run_masks(trace,
                                std::string("--set candidates.source=") + source +
                                    " --set comparator.gamma=0.2 --set lsh_unit.cluster_size=8",
                                name);
      CHECK(run.masks.metadata.at("candidates.source") == source);
      check_against_stats(run);
      for (int l = 0; l < 2; ++l) {
        CHECK(run.masks.tokens(l).size() == 48);
        CHECK(count_code(run.masks, l, 0) > 0);  // the generator narrowed the rows
        CHECK(count_code(run.masks, l, 1) > 0);  // the comparator filtered some candidates
        CHECK(count_code(run.masks, l, 2) > 0);
        if (!causal) continue;
        for (int h = 0; h < 2; ++h) {
          const Rows rows = run.masks.head(l, h);
          for (size_t i = 0; i < rows.size(); ++i)
            for (size_t j = i + 1; j < rows[i].size(); ++j) REQUIRE(rows[i][j] == 0);
        }
      }
    }
  }
}

TEST_CASE("FCA: coarse tokens are -1, the reduced layers' masks match the stats") {
  const std::string trace = synth_trace("fca", false);
  const Run run = run_masks(trace, "--set skim_controller.mode=fca --set comparator.gamma=0.2", "fca");
  const json& active = run.stats["skim"]["active_tokens"];
  std::vector<int32_t> identity(48);
  for (int i = 0; i < 48; ++i) identity[i] = i;
  CHECK(run.masks.tokens(0) == identity);
  const std::vector<int32_t> tokens = run.masks.tokens(1);
  REQUIRE(tokens.size() == active[1].get<size_t>());
  CHECK(tokens.size() < 48);
  CHECK(tokens.front() == 0);
  CHECK(tokens.back() == -1);  // fine tokens first, then the coarse groups
  CHECK(run.masks.keep(1).shape == std::vector<int64_t>{2, active[1].get<int64_t>(), active[1].get<int64_t>()});
  check_against_stats(run);
}

TEST_CASE("Treeformer TC writes tokens but no keep, and says so") {
  const std::string trace = synth_trace("tc", false);
  const Run run =
      run_masks(trace, "--set candidates.source=tree --set tree_engine.attention=tc --set qk_unit.mode=dense", "tc");
  CHECK(run.masks.tokens(0).size() == 48);
  CHECK(run.masks.tensors.count("layers.0.keep") == 0);
  CHECK(run.masks.tensors.count("layers.1.keep") == 0);
  CHECK(run.masks.metadata.at("keep").find("tree_engine.attention = tc") != std::string::npos);
}

TEST_CASE("pure low-rank (candidates none): every row has no candidate") {
  const std::string trace = synth_trace("lowrank", false);
  const Run run = run_masks(
      trace, "--set candidates.source=none --set lowrank_unit.enabled=true --set qk_unit.mode=dense", "lowrank");
  for (int l = 0; l < 2; ++l) {
    CHECK(run.masks.keep(l).shape == std::vector<int64_t>{2, 48, 48});
    CHECK(count_code(run.masks, l, 0) == 2 * 48 * 48);
  }
  check_against_stats(run);
}

TEST_CASE("masks errors: one line, non-zero exit, neither stats nor masks left") {
  const std::string trace = hand_trace("errors", false);
  const fs::path dir = scratch() / "errors";
  fs::create_directories(dir);
  const fs::path out = dir / "stats.json", masks = dir / "m.safetensors";

  // The masks path is below a regular file: found before the simulation.
  CliResult r = run_attnsim("run -q --trace " + trace + " --out " + out.string() + " --masks " + trace + "/m.safetensors");
  CHECK(r.code != 0);
  CHECK(count_lines(r.out) == 1);
  CHECK(r.out.rfind("attnsim: --masks: " + trace + "/m.safetensors: cannot write", 0) == 0);
  CHECK_FALSE(fs::exists(out));

  // The stats cannot be written: the masks, written first, are removed.
  r = run_attnsim("run -q --trace " + trace + " --out " + trace + "/s.json --masks " + masks.string());
  CHECK(r.code != 0);
  CHECK(count_lines(r.out) == 1);
  CHECK_FALSE(fs::exists(masks));

  // A missing directory is created, as for --out.
  r = run_attnsim("run -q --trace " + trace + " --masks " + (dir / "new" / "m.safetensors").string());
  CHECK(r.code == 0);
  CHECK(fs::exists(dir / "new" / "m.safetensors"));

  // Only the runs' outputs: no temporary file anywhere.
  for (const auto& e : fs::recursive_directory_iterator(dir))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("masks over 1 GiB fails before simulating, naming the option and the size") {
  // One head of 32768 tokens: keep alone is 2^30 bytes, the tokens 4 x 32768 more.
  const int n = 32768;
  std::vector<float> x(n, 1.0f);
  attnsim::SafetensorsWriter w;
  for (const char* t : {"q", "k", "v"}) w.add_float(std::string("layers.0.") + t, DType::F32, {1, n, 1}, x);
  const std::string trace = (scratch() / "huge.safetensors").string();
  w.write(trace);
  const fs::path out = scratch() / "huge.stats.json", masks = scratch() / "huge.masks.safetensors";
  const CliResult r =
      run_attnsim("run -q --trace " + trace + " --out " + out.string() + " --masks " + masks.string());
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: --masks: the masks of " + trace +
                     " would take 1073872896 bytes (1024.1 MiB), more than the 1 GiB limit (H x N x M bytes per layer)\n");
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(masks));
}
