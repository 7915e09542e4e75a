// Whole runs with the token-skim controller and the encoder-layer schedule, on hand-made
// traces whose counts are derived in the comments. One design per TEST_CASE (ctest runs
// each in its own process); the no-skim baseline runs in a forked child.
#include "sim/config.h"
#include "sim/run.h"
#include "sim/stats.h"
#include "workloads/safetensors.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace attnsim;

namespace {

// Two layers, one head, N = M = 4, d = 4, integer values with max |x| = 127 (scale 1).
// keep0 / keep1: the layers' skim_keep masks (empty: none).
std::string write_trace(const std::vector<float>& keep0, const std::vector<float>& keep1) {
  const std::vector<float> q = {127, 0, -3, 5, 2, -127, 1, 0, 10, 20, 30, 40, -5, -6, 7, 8};
  const std::vector<float> k = {1, 2, 3, 127, -4, 5, -6, 7, 8, -9, 10, -11, 0, 0, 0, 1};
  const std::vector<float> v = {127, 1, 2, 3, 4, 5, 6, 7, -8, 9, -10, 11, 12, 13, 14, 15};
  SafetensorsWriter w;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    w.add_float(p + "q", DType::F32, {1, 4, 4}, q);
    w.add_float(p + "k", DType::F32, {1, 4, 4}, k);
    w.add_float(p + "v", DType::F32, {1, 4, 4}, v);
  }
  if (!keep0.empty()) w.add_float("layers.0.skim_keep", DType::U8, {4}, keep0);
  if (!keep1.empty()) w.add_float("layers.1.skim_keep", DType::U8, {4}, keep1);
  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_skim_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "t.safetensors").string();
  w.write(path);
  return path;
}

std::vector<std::string> machine(const std::string& skim, const std::string& scope = "attention") {
  return {"qk_unit.type=\"bit_parallel\"", "qk_unit.mode=\"dense\"", "qk_unit.lanes=2",
          "dram.bytes_per_cycle=4", "dram.latency_cycles=10", "sram.capacity_kib=1", "sram.width_bits=64",
          "softmax.elements_per_cycle=2", "softmax.latency_cycles=1", "av_unit.macs_per_cycle=8",
          "av_unit.latency_cycles=1", "av_unit.output_bits=8", "skim_controller.mode=\"" + skim + "\"",
          "skim_controller.tokens_per_cycle=1", "model.scope=\"" + scope + "\""};
}

nlohmann::json run(const std::vector<std::string>& sets, const std::string& trace) {
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
  return run_simulation(c, trace, 1).stats;
}

}  // namespace

TEST_CASE("transkimmer masks from the trace shrink the next layer") {
  const nlohmann::json s = run(machine("transkimmer"), write_trace({1, 1, 1, 1}, {1, 0, 1, 0}));
  // Layer 0 keeps all 4 tokens, layer 1 keeps tokens 0 and 2.
  CHECK(s["skim"]["active_tokens"] == nlohmann::json({4, 2}));
  CHECK(s["skim"]["skim_ratio"].get<double>() == 1.0 - 6.0 / 8.0);
  // Candidates: 16 + 4; exact keys over the unreduced 2 x 16.
  CHECK(s["filter"]["candidate_keys"] == 20);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 20.0 / 32.0);
  // QK (bit-parallel, L = 2): layer 0 4 rows x 2 cycles, layer 1 2 rows x 1 cycle.
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 8 + 2);
  // Controller: scans 4 + 4 tokens, forwards the 2 dropped ones: 10 token operations;
  // busy = scans at 1 token/cycle = 8; the forwarded hidden states (2 x D=4 x 16 bits =
  // 16 bytes) go to DRAM.
  CHECK(s["counters"]["skim_controller"]["token_ops"] == 10);
  CHECK(s["cycles"]["by_module"]["skim_controller"]["busy"] == 8);
  CHECK(s["layers"][1]["active_tokens"] == 2);
  // The baseline with the controller off ran in a child process.
  CHECK(s["skim"]["cycles_without_skim"].get<uint64_t>() > 0);
  CHECK(s["skim"]["energy_pj_without_skim"].get<double>() > 0);
}

TEST_CASE("all-ones masks change nothing but the controller's own work") {
  const nlohmann::json s = run(machine("transkimmer"), write_trace({1, 1, 1, 1}, {1, 1, 1, 1}));
  CHECK(s["skim"]["active_tokens"] == nlohmann::json({4, 4}));
  CHECK(s["skim"]["skim_ratio"].get<double>() == 0.0);
  // The controller scans 4 tokens before each layer (4 cycles at 1 token/cycle) and the
  // layers wait for it; everything else is the no-skim run.
  const uint64_t controller = s["cycles"]["by_module"]["skim_controller"]["busy"];
  CHECK(controller == 8);
  CHECK(s["cycles"]["total"].get<uint64_t>() == s["skim"]["cycles_without_skim"].get<uint64_t>() + controller);
  CHECK(s["filter"]["candidate_keys"] == 32);
  CHECK(s["quality"]["rel_error"].get<double>() == 0.0);
}

TEST_CASE("fca pools the tail into coarse tokens for the next layer") {
  std::vector<std::string> sets = machine("fca");
  sets.push_back("skim_controller.keep=[2, 2]");
  sets.push_back("skim_controller.groups=1");
  const nlohmann::json s = run(sets, write_trace({}, {}));
  // Layer 0: 4 tokens; keep R = 2 (token 0 and the best other), the 2 others pooled
  // into 1 coarse token: layer 1 processes 3 tokens.
  CHECK(s["skim"]["active_tokens"] == nlohmann::json({4, 3}));
  CHECK(s["filter"]["candidate_keys"] == 16 + 9);
  // Controller after each layer: score adds H x n^2 (16, then 9), ranking n*ceil(log2 n)
  // compares (4 x 2 = 8, then 3 x 2 = 6), pooling 2 tail tokens x D = 4 MACs (8), then
  // 1 x 4 (the layer-1 tail: 1 token).
  CHECK(s["counters"]["skim_controller"]["score_adds"] == 16 + 9);
  CHECK(s["counters"]["skim_controller"]["token_ops"] == 8 + 6);
  CHECK(s["counters"]["skim_controller"]["macs"] == 8 + 4);
}

TEST_CASE("encoder scope runs the projections and the FFN on the GEMM engine") {
  const nlohmann::json s = run(machine("off", "encoder"), write_trace({}, {}));
  // D = H x d = 4, d_ff = 4D = 16, n = 4 per layer:
  //   QKV 4x4x12 = 192, out 4x4x4 = 64, FFN 4x4x16 + 4x16x4 = 512 -> 768 MACs per layer.
  CHECK(s["counters"]["gemm_engine"]["macs"] == 2 * 768);
  CHECK(s["layers"].size() == 2);
  // The layers follow one another and together span the run.
  CHECK(s["layers"][0]["cycles"]["start"] == 0);
  CHECK(s["layers"][1]["cycles"]["start"] == s["layers"][0]["cycles"]["end"]);
  CHECK(s["layers"][1]["cycles"]["end"] == s["cycles"]["total"]);
  // Layer energies add up to the total.
  const double sum = s["layers"][0]["energy_pj"].get<double>() + s["layers"][1]["energy_pj"].get<double>();
  CHECK(sum == Approx(s["energy_pj"]["total"].get<double>()).epsilon(1e-9));
  CHECK_FALSE(s.contains("skim"));
}
