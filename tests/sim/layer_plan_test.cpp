// The run plan and the layer planner (sim/layer_plan.h) on a hand-made trace: per-(layer,
// head) values resolved once, the checks that run before anything is simulated, and what
// each layer processes under Transkimmer and FCA.
#include "sim/layer_plan.h"

#include "arch/qk_math.h"
#include "sim/config.h"
#include "sim/metrics.h"
#include "workloads/safetensors.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace attnsim;

namespace {

// 2 layers x 2 heads, N = M = 4, d = 2. Every head's q, k and v reach magnitude 127, so
// every quantization scale is 1. Layer 1 keeps tokens 0 and 2 (skim_keep 1 0 1 0).
std::string write_trace(bool with_keep = true) {
  SafetensorsWriter w;
  const std::vector<float> x = {127, 1, 2, 3, 4, 5, 6, 7, -127, 1, 2, 3, 4, 5, 6, 7};  // [2, 4, 2]
  for (int l = 0; l < 2; ++l) {
    for (const char* t : {"q", "k", "v"})
      w.add_float("layers." + std::to_string(l) + "." + t, DType::F32, {2, 4, 2}, x);
    if (with_keep)
      w.add_float("layers." + std::to_string(l) + ".skim_keep", DType::U8, {4},
                  l == 0 ? std::vector<float>{1, 1, 1, 1} : std::vector<float>{1, 0, 1, 0});
  }
  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_plan_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / (with_keep ? "keep.safetensors" : "plain.safetensors")).string();
  w.write(path);
  return path;
}

Config config(const std::vector<std::string>& sets) {
  return resolve_config(json{{"schema", kConfigSchema}}, "c.json", sets);
}

std::string plan_error(const Config& c, const Trace& trace) {
  try {
    plan_run(c, trace);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("the plan resolves every per-head value once per (layer, head)") {
  const Trace trace(write_trace());
  const RunPlan p = plan_run(config({"comparator.gamma=[[0.5,0.01],[0.001,0.1]]", "comparator.theta=[3,-4]"}), trace);
  CHECK(p.gamma == std::vector<std::vector<double>>{{0.5, 0.01}, {0.001, 0.1}});
  CHECK(p.theta == std::vector<std::vector<int64_t>>{{3, -4}, {3, -4}});
  CHECK(p.margin.empty());  // no comparator.margin: margins come from gamma per layer
  // A head's Q, K and V: (4 + 2 x 4) x 2 x 8 bits = 192 bits; two fit in 1024 KiB.
  CHECK(p.sram_slots == 2);
  CHECK(p.rows == 2 * 2 * 4);
  CHECK(p.d_model == 2 * 2);  // H x d without config or metadata
  CHECK(p.d_ff == 4 * 4);

  const RunPlan m = plan_run(config({"comparator.margin=7"}), trace);
  CHECK(m.margin == std::vector<std::vector<int64_t>>{{7, 7}, {7, 7}});
}

TEST_CASE("a config that does not fit the trace fails before the run, naming the key") {
  const Trace trace(write_trace());
  // Keys given by an override are named as --set; the others by the file.
  CHECK(plan_error(config({"comparator.gamma=[0.1,0.2,0.3]"}), trace) ==
        "--set comparator.gamma: has 3 values, the trace has 2 heads");
  CHECK(plan_error(config({"comparator.theta=[[1,2]]"}), trace) ==
        "--set comparator.theta: has 1 lists, the trace has 2 layers");
  CHECK(plan_error(config({"skim_controller.mode=fca", "skim_controller.keep=[2,2,2]"}), trace) ==
        "--set skim_controller.keep: has 3 values, the trace has 2 layers");
  CHECK(plan_error(config({"skim_controller.mode=fca", "skim_controller.keep=1.5"}), trace) ==
        "--set skim_controller.keep: a single number is the fraction of each layer's tokens kept: must be "
        "<= 1, got 1.5");
  const Trace plain(write_trace(false));
  CHECK(plan_error(config({"skim_controller.mode=transkimmer"}), plain) ==
        "c.json: skim_controller.source: \"trace\" needs layers.0.skim_keep in " + plain.path() + ", which has none");
  const Config from_file = resolve_config(json{{"schema", kConfigSchema}, {"comparator", {{"gamma", {0.1, 0.2, 0.3}}}}}, "c.json");
  CHECK(plan_error(from_file, trace) == "c.json: comparator.gamma: has 3 values, the trace has 2 heads");
}

TEST_CASE("each layer gets its heads' margins from gamma and the head's own scales") {
  const Trace trace(write_trace());
  const Config c = config({"comparator.gamma=[[0.5,0.01],[0.001,0.1]]", "comparator.theta=[3,-4]"});
  const RunPlan plan = plan_run(c, trace);
  Metrics metrics(2, false);
  LayerPlanner planner(c, trace, plan, metrics);
  // T = floor(-ln(gamma) * sqrt(2) / (1 x 1)): 0.5 -> 0.98 -> 0; 0.01 -> 6.51 -> 6;
  // 0.001 -> 9.77 -> 9; 0.1 -> 3.26 -> 3.
  const LayerStart l0 = planner.begin_layer(0);
  CHECK(l0.context->margin == std::vector<int64_t>{0, 6});
  CHECK(l0.context->theta == std::vector<int64_t>{3, -4});
  CHECK(l0.active == 4);
  CHECK_FALSE(l0.skim_job);
  CHECK(planner.end_layer(0).tokens_after == 4);
  const LayerStart l1 = planner.begin_layer(1);
  CHECK(l1.context->margin == std::vector<int64_t>{9, 3});
  CHECK(planner.active_tokens() == std::vector<int>{4, 4});
}

TEST_CASE("Transkimmer: the trace's masks drop tokens before the layer, and the controller's job says so") {
  const Trace trace(write_trace());
  const Config c = config({"skim_controller.mode=transkimmer"});
  const RunPlan plan = plan_run(c, trace);
  Metrics metrics(2, false);
  LayerPlanner planner(c, trace, plan, metrics);
  const LayerStart l0 = planner.begin_layer(0);  // keep 1 1 1 1: nothing dropped
  CHECK(l0.active == 4);
  CHECK(l0.skim_job);
  CHECK(l0.job.tokens_scanned == 4);
  CHECK(l0.job.tokens_forwarded == 0);
  CHECK(l0.job.predictor_macs == 0);  // masks from the trace: no predictor
  CHECK_FALSE(l0.context->full);      // not reduced
  planner.end_layer(0);
  const LayerStart l1 = planner.begin_layer(1);  // keep 1 0 1 0: tokens 1 and 3 leave
  CHECK(l1.active == 2);
  CHECK(l1.job.tokens_scanned == 4);
  CHECK(l1.job.tokens_forwarded == 2);  // their hidden states go to the forwarding buffer
  CHECK(l1.job.d_model == 4);
  CHECK(l1.context->view.n == 2);
  CHECK(l1.context->view.original == std::vector<int32_t>{0, 2});
  REQUIRE(l1.context->full);  // the quality reference: the unreduced layer
  CHECK(l1.context->full->n == 4);
  CHECK(planner.active_tokens() == std::vector<int>{4, 2});
}

TEST_CASE("FCA: after the attention, R_l fine tokens stay and the tail becomes coarse tokens") {
  const Trace trace(write_trace());
  const Config c = config({"skim_controller.mode=fca", "skim_controller.keep=0.5", "skim_controller.groups=1"});
  const RunPlan plan = plan_run(c, trace);
  Metrics metrics(2, false);
  LayerPlanner planner(c, trace, plan, metrics);
  const LayerStart l0 = planner.begin_layer(0);
  REQUIRE(l0.context->abar);  // the head-mean probabilities the head model accumulates
  CHECK(l0.context->abar->size() == 16);
  CHECK_FALSE(l0.skim_job);
  // No head ran, so every score is 0: R = ceil(0.5 x 4) = 2 fine tokens (0 and, on the
  // tie, the lowest other index 1); the tail {2, 3} is pooled into C = 1 coarse token.
  const LayerEnd e0 = planner.end_layer(0);
  CHECK(e0.skim_job);
  CHECK(e0.tokens_after == 3);
  CHECK(e0.job.score_adds == 2 * 4 * 4);  // heads x n x n probabilities
  CHECK(e0.job.rank_ops == 4 * 2);        // n x ceil(log2 n)
  CHECK(e0.job.pool_macs == 2 * 4);       // tail tokens x D
  // Layer 1 processes the fine tokens and the coarse one, which has no original token.
  const LayerStart l1 = planner.begin_layer(1);
  CHECK(l1.active == 3);
  CHECK(l1.context->view.original == std::vector<int32_t>{0, 1, -1});
  REQUIRE(l1.context->full);
}
