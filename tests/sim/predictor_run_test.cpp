// Whole runs with the Transkimmer predictor (skim_controller.source = "predictor") on a tiny
// synthetic trace written with SynthOptions::predictor. Expected values come from the
// library's own predictor (skim::predictor_keep, cumulative masks) and hand formulas, not
// from earlier runs. One design per TEST_CASE (ctest runs each in its own process).
#include "arch/skim_math.h"
#include "sim/config.h"
#include "sim/run.h"
#include "sim/stats.h"
#include "workloads/safetensors.h"
#include "workloads/synth.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace attnsim;

namespace {

// Three layers, two heads, N = 16 tokens, d = 4: D = H x d = 8.
constexpr int kLayers = 3, kHeads = 2, kTokens = 16, kHeadDim = 4, kD = kHeads * kHeadDim;
constexpr int kMacsPerCycle = 48;  // the dedicated unit's MAC array (not a divisor of D^2 + 2D)

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_predictor_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string write_trace(bool predictor) {
  SynthOptions o;
  o.layers = kLayers;
  o.heads = kHeads;
  o.tokens = kTokens;
  o.head_dim = kHeadDim;
  o.seed = 11;
  o.predictor = predictor;
  o.predictor_keep = 0.75;
  const std::string path = temp_path(predictor ? "predictor.safetensors" : "plain.safetensors");
  write_synthetic_trace(o, path);
  return path;
}

std::vector<std::string> machine(const std::string& unit, const std::string& scope = "attention") {
  return {"qk_unit.type=\"bit_parallel\"", "qk_unit.mode=\"dense\"", "qk_unit.lanes=2",
          "dram.bytes_per_cycle=4", "dram.latency_cycles=10", "sram.capacity_kib=1",
          "sram.width_bits=64", "softmax.elements_per_cycle=2", "softmax.latency_cycles=1",
          "av_unit.macs_per_cycle=8", "av_unit.latency_cycles=1", "av_unit.output_bits=8",
          "skim_controller.mode=\"transkimmer\"", "skim_controller.source=\"predictor\"",
          "skim_controller.predictor_unit=\"" + unit + "\"",
          "skim_controller.macs_per_cycle=" + std::to_string(kMacsPerCycle),
          "skim_controller.tokens_per_cycle=1", "model.scope=\"" + scope + "\""};
}

nlohmann::json run(const std::vector<std::string>& sets, const std::string& trace) {
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
  return run_simulation(c, trace, 1).stats;
}

// Tokens reaching each layer (before its skim) and tokens it processes (after), from the
// trace's hidden states and weights through skim::predictor_keep, with cumulative masks:
// the predictor of layer l sees only the tokens layers 0..l-1 kept; token 0 stays.
struct Expected {
  std::vector<int> before, after;
};

Expected expected_tokens(const std::string& path) {
  const Trace trace(path);
  Expected e;
  skim::TokenMap active = skim::identity_map(trace.shape(0).n);
  for (int l = 0; l < trace.layers(); ++l) {
    std::vector<int32_t> ids;
    for (const auto& t : active) ids.push_back(t.original);
    const std::vector<float> hidden = trace.hidden_rows(l, ids);
    const std::vector<uint8_t> keep = skim::cumulative_keep_active(
        active, skim::predictor_keep(hidden.data(), static_cast<int>(ids.size()), trace.predictor(l)));
    e.before.push_back(static_cast<int>(active.size()));
    active = skim::surviving_tokens(active, keep);
    e.after.push_back(static_cast<int>(active.size()));
  }
  return e;
}

uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Sum over layers of predictor_macs(tokens reaching the layer, D).
uint64_t predictor_macs_total(const Expected& e) {
  uint64_t macs = 0;
  for (int n : e.before) macs += skim::predictor_macs(n, kD);
  return macs;
}

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == std::string::npos; }

}  // namespace

TEST_CASE("predictor decisions from the trace set every layer's active tokens") {
  const std::string path = write_trace(true);
  const Expected e = expected_tokens(path);
  // The synthetic predictor keeps 1 + round(0.75 (n - 1)) of the n tokens reaching a
  // layer: 16 -> 1 + round(11.25) = 12 -> 1 + round(8.25) = 9 -> 1 + round(6) = 7.
  CHECK(e.before == std::vector<int>({16, 12, 9}));
  CHECK(e.after == std::vector<int>({12, 9, 7}));

  const nlohmann::json s = run(machine("dedicated"), path);
  CHECK(s["skim"]["active_tokens"] == nlohmann::json(e.after));
  for (int l = 0; l < kLayers; ++l) CHECK(s["layers"][l]["active_tokens"] == e.after[l]);
  CHECK(s["skim"]["skim_ratio"].get<double>() == 1.0 - (12.0 + 9 + 7) / (3.0 * 16));
  // Attention on the active tokens only: candidates (dense) = H x sum of n_l^2.
  CHECK(s["filter"]["candidate_keys"] == kHeads * (12 * 12 + 9 * 9 + 7 * 7));
}

TEST_CASE("the dedicated predictor unit charges predictor_macs on its own MAC array") {
  const std::string path = write_trace(true);
  const Expected e = expected_tokens(path);
  const nlohmann::json s = run(machine("dedicated"), path);
  // MACs: sum over layers of n_before (D^2 + 2D) = (16 + 12 + 9) x (64 + 16) = 2960.
  const uint64_t macs = predictor_macs_total(e);
  CHECK(macs == 37 * 80);
  CHECK(s["counters"]["skim_controller"]["macs"] == macs);
  // Busy per layer: ceil(predictor MACs / 48) + tokens scanned at 1 token/cycle
  // = (27 + 16) + (20 + 12) + (15 + 9) = 99.
  uint64_t busy = 0;
  for (int n : e.before) busy += div_up(skim::predictor_macs(n, kD), kMacsPerCycle) + n;
  CHECK(busy == 99);
  CHECK(s["cycles"]["by_module"]["skim_controller"]["busy"] == busy);
  // Token operations: scans (16 + 12 + 9) + forwarded skimmed tokens (4 + 3 + 2).
  CHECK(s["counters"]["skim_controller"]["token_ops"] == 37 + 9);
  // Attention scope with a dedicated predictor: no GEMM engine.
  CHECK_FALSE(s["counters"].contains("gemm_engine"));
}

TEST_CASE("predictor_unit gemm_engine runs the two predictor GEMMs on the GEMM engine") {
  const std::string path = write_trace(true);
  const Expected e = expected_tokens(path);
  const nlohmann::json s = run(machine("gemm_engine"), path);
  CHECK(s["skim"]["active_tokens"] == nlohmann::json(e.after));
  // Per layer [n x D] x [D x D] and [n x D] x [D x 2]: n (D^2 + 2D) MACs; attention scope
  // has no other GEMM.
  uint64_t gemm = 0;
  for (int n : e.before) gemm += static_cast<uint64_t>(n) * kD * kD + static_cast<uint64_t>(n) * kD * 2;
  CHECK(gemm == predictor_macs_total(e));
  CHECK(s["counters"]["gemm_engine"]["macs"] == gemm);
  CHECK(s["cycles"]["by_module"]["gemm_engine"]["busy"].get<uint64_t>() > 0);
  // The controller only scans and forwards: no MACs, busy = tokens scanned.
  CHECK(s["counters"]["skim_controller"]["macs"] == 0);
  CHECK(s["cycles"]["by_module"]["skim_controller"]["busy"] == 16 + 12 + 9);
}

TEST_CASE("encoder scope with the predictor on the GEMM engine adds n (D^2 + 2D) per layer") {
  const std::string path = write_trace(true);
  const Expected e = expected_tokens(path);
  const nlohmann::json s = run(machine("gemm_engine", "encoder"), path);
  // D = 8, d_ff = 4D = 32. Per processed token: QKV 3D^2 + out D^2 + FFN 2 D d_ff
  // = 192 + 64 + 512 = 768 MACs; plus the predictor on the tokens reaching the layer.
  uint64_t expected = 0;
  for (int l = 0; l < kLayers; ++l)
    expected += 768ull * e.after[l] + static_cast<uint64_t>(e.before[l]) * (kD * kD + 2 * kD);
  CHECK(expected == 768ull * 28 + 80ull * 37);
  CHECK(s["counters"]["gemm_engine"]["macs"] == expected);
  CHECK(s["counters"]["skim_controller"]["macs"] == 0);
}

TEST_CASE("source predictor without hidden states or weights is a one-line config error") {
  // A synthetic trace without --predictor has neither.
  const std::string plain = write_trace(false);
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", machine("dedicated"));
  try {
    run_simulation(c, plain, 1);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& err) {
    const std::string what = err.what();
    CHECK(one_line(what));
    CHECK(what.find("skim_controller.source") != std::string::npos);
    CHECK(what.find("layers.0.hidden") != std::string::npos);
    CHECK(what.rfind("--set skim_controller.source: ", 0) == 0);  // the key came from an override
  }

  // Hidden states but no predictor weights: the same error.
  SafetensorsWriter w;
  const std::vector<float> qkv(2 * 4, 0.5f), hidden(2 * 3, 1.0f);
  w.add_float("layers.0.q", DType::F32, {1, 2, 4}, qkv);
  w.add_float("layers.0.k", DType::F32, {1, 2, 4}, qkv);
  w.add_float("layers.0.v", DType::F32, {1, 2, 4}, qkv);
  w.add_float("layers.0.hidden", DType::F32, {2, 3}, hidden);
  const std::string hidden_only = temp_path("hidden_only.safetensors");
  w.write(hidden_only);
  try {
    run_simulation(c, hidden_only, 1);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& err) {
    const std::string what = err.what();
    CHECK(one_line(what));
    CHECK(what.find("skim_controller.source") != std::string::npos);
    CHECK(what.find("skim_predictor") != std::string::npos);
  }
}

TEST_CASE("a model.d_model other than the hidden states' D is a config error") {
  // The predictor's cost, the forwarded hidden states and the GEMMs all use one D.
  std::vector<std::string> sets = machine("dedicated");
  sets.push_back("model.d_model=" + std::to_string(2 * kD));
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
  try {
    run_simulation(c, write_trace(true), 1);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& err) {
    const std::string what = err.what();
    CHECK(one_line(what));
    CHECK(what.find("--set model.d_model: is " + std::to_string(2 * kD)) == 0);
    CHECK(what.find("has D = " + std::to_string(kD)) != std::string::npos);
  }
}
