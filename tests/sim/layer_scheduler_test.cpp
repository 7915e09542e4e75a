// The layer scheduler with a real LayerPlanner on tiny hand-written traces, and fake units
// on its FIFOs: a GEMM engine that answers every job 10 cycles after taking it, a skim
// controller that answers after 3, and a "DMA" that takes the layer and counts it in the
// LayerBarrier 50 cycles later. The rule (sim/layer_scheduler.h): per layer l, in order,
// Transkimmer's skim job (its predictor first, as [n x D] x [D x D] and [n x D] x [D x 2]
// on the GEMM engine when it runs there), QKV [n x D] x [D x 3D], attention (until the
// barrier counts l), out_proj [n x D] x [D x D], FCA's skim job, FFN [n' x D] x [D x d_ff]
// and [n' x d_ff] x [d_ff x D]; attention scope leaves out every GEMM; the layer spans
// the start of its first step to the end of its last. With pipeline.overlap_gemm the QKV
// projection runs per head ([n x D] x [D x 3D/H]) and the fake DMA takes head h only
// when the gate says its projection is done. Each TEST_CASE elaborates one design: ctest
// runs each in its own process.
#include "arch/dma.h"
#include "arch/gemm_engine.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/skim_controller.h"
#include "sim/config.h"
#include "sim/layer_plan.h"
#include "sim/layer_scheduler.h"
#include "sim/metrics.h"
#include "workloads/safetensors.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace attnsim;

namespace {

// Two layers of H = 2 heads, N = M = 5 tokens, d = 3: D = H x d = 6 and d_ff = 4 x D = 24
// (neither is in the config or the trace's metadata). The shapes below are therefore
// M x N x K with n = 5 (or fewer after skimming), D = 6, 3D = 18, d_ff = 24.
constexpr int kLayers = 2, kHeads = 2, kTokens = 5, kHeadDim = 3, kD = kHeads * kHeadDim;
constexpr uint64_t kGemmCycles = 10, kSkimCycles = 3, kAttentionCycles = 50;

struct TraceExtras {
  std::vector<std::vector<float>> skim_keep;  // per layer, [N] 0/1; empty: none
  bool predictor = false;                     // hidden states and a predictor per layer
  std::vector<float> predictor_bias;          // fc2 bias (skim, keep) when `predictor`
};

std::string write_trace(const std::string& name, const TraceExtras& extras) {
  SafetensorsWriter w;
  const size_t size = static_cast<size_t>(kHeads) * kTokens * kHeadDim;
  std::vector<float> q(size), k(size), v(size);
  for (size_t i = 0; i < size; ++i) {
    q[i] = static_cast<float>(static_cast<int>(i % 7) - 3);
    k[i] = static_cast<float>(static_cast<int>(i % 5) - 2);
    v[i] = static_cast<float>(static_cast<int>(i % 4) + 1);
  }
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    w.add_float(p + "q", DType::F32, {kHeads, kTokens, kHeadDim}, q);
    w.add_float(p + "k", DType::F32, {kHeads, kTokens, kHeadDim}, k);
    w.add_float(p + "v", DType::F32, {kHeads, kTokens, kHeadDim}, v);
    if (!extras.skim_keep.empty()) w.add_float(p + "skim_keep", DType::U8, {kTokens}, extras.skim_keep[l]);
    if (extras.predictor) {
      // LayerNorm(1, 0), fc1 = 0, LayerNorm(1, 0), GELU, fc2 = 0: every token's logits
      // are fc2's bias, whatever its hidden state.
      std::vector<float> hidden(static_cast<size_t>(kTokens) * kD);
      for (size_t i = 0; i < hidden.size(); ++i) hidden[i] = static_cast<float>(i % 3);
      const std::string s = p + "skim_predictor.";
      w.add_float(p + "hidden", DType::F32, {kTokens, kD}, hidden);
      w.add_float(s + "ln1.weight", DType::F32, {kD}, std::vector<float>(kD, 1));
      w.add_float(s + "ln1.bias", DType::F32, {kD}, std::vector<float>(kD, 0));
      w.add_float(s + "fc1.weight", DType::F32, {kD, kD}, std::vector<float>(kD * kD, 0));
      w.add_float(s + "fc1.bias", DType::F32, {kD}, std::vector<float>(kD, 0));
      w.add_float(s + "ln2.weight", DType::F32, {kD}, std::vector<float>(kD, 1));
      w.add_float(s + "ln2.bias", DType::F32, {kD}, std::vector<float>(kD, 0));
      w.add_float(s + "fc2.weight", DType::F32, {2, kD}, std::vector<float>(2 * kD, 0));
      w.add_float(s + "fc2.bias", DType::F32, {2}, extras.predictor_bias);
    }
  }
  w.set_metadata("model", "tiny");
  w.set_metadata("causal", "false");
  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_scheduler_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / (name + ".safetensors")).string();
  w.write(path);
  return path;
}

// The functional side the scheduler drives: config, trace, plan, metrics and planner.
struct Planned {
  Config config;
  Trace trace;
  RunPlan plan;
  Metrics metrics;
  LayerPlanner planner;
  Planned(const std::vector<std::string>& sets, const std::string& trace_path)
      : config(resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets)),
        trace(trace_path),
        plan(plan_run(config, trace)),
        metrics(trace.layers(), false),
        planner(config, trace, plan, metrics) {}
};

// A scheduler whose units are fakes; every job and layer end goes to one log, in order,
// each line starting with the cycle the job was taken (or the layer ended).
struct SchedulerHarness : sc_core::sc_module {
  sc_core::sc_fifo<std::shared_ptr<const LayerContext>> layers_fifo;
  sc_core::sc_fifo<GemmJob> gemm_jobs, gemm_done;
  sc_core::sc_fifo<SkimJob> skim_jobs, skim_done;
  LayerBarrier barrier;
  ProjectionGate gate;
  std::vector<std::string> log;
  LayerScheduler scheduler;

  explicit SchedulerHarness(sc_core::sc_module_name name, Planned& p)
      : sc_module(name),
        layers_fifo("layers", 1),
        gemm_jobs("gemm_jobs", 1),
        gemm_done("gemm_done", 1),
        skim_jobs("skim_jobs", 1),
        skim_done("skim_done", 1),
        scheduler("scheduler", p.trace.layers(), p.config.model.scope == ModelScope::encoder,
                  p.config.skim_controller.predictor_unit == PredictorUnit::gemm_engine,
                  p.config.pipeline.overlap_gemm, p.planner, barrier, gate,
                  [this](int l, Cycles start, Cycles end) {
                    entry(end) << "end L" << l << " " << start.count() << ".." << end.count();
                  }) {
    scheduler.layer_out(layers_fifo);
    scheduler.gemm_out(gemm_jobs);
    scheduler.gemm_done(gemm_done);
    scheduler.skim_out(skim_jobs);
    scheduler.skim_done(skim_done);
    SC_HAS_PROCESS(SchedulerHarness);
    SC_THREAD(gemm_engine);
    SC_THREAD(skim_controller);
    SC_THREAD(dma);
  }

  // A line of the log stamped with cycle `at`: the caller streams the rest into it, and
  // it joins the log when the statement ends.
  struct Line {
    std::vector<std::string>& log;
    std::ostringstream text;
    Line(std::vector<std::string>& l, Cycles at) : log(l) { text << at.count() << " "; }
    Line(const Line&) = delete;
    ~Line() { log.push_back(text.str()); }
    template <class T>
    Line& operator<<(const T& x) {
      text << x;
      return *this;
    }
  };
  Line entry(Cycles at) { return Line(log, at); }

  void gemm_engine() {
    while (true) {
      const GemmJob j = gemm_jobs.read();
      entry(now_cycles()) << "gemm " << j.name << " " << j.m << "x" << j.n << "x" << j.k;
      wait_cycles(Cycles(kGemmCycles));
      gemm_done.write(j);
    }
  }
  void skim_controller() {
    while (true) {
      const SkimJob j = skim_jobs.read();
      entry(now_cycles()) << "skim L" << j.layer << " predictor_macs " << j.predictor_macs << " scanned "
                          << j.tokens_scanned << " forwarded " << j.tokens_forwarded << " rank " << j.rank_ops
                          << " pool " << j.pool_macs << " adds " << j.score_adds << " D " << j.d_model;
      wait_cycles(Cycles(kSkimCycles));
      skim_done.write(j);
    }
  }
  // Without overlap the whole layer's attention takes kAttentionCycles. With
  // pipeline.overlap_gemm it takes the heads one after another, each `head_cycles` long,
  // starting each only when the gate says its projection is done (as the real DMA does).
  uint64_t head_cycles = 0;
  void dma() {
    while (true) {
      const std::shared_ptr<const LayerContext> layer = layers_fifo.read();
      const int l = layer->view.index;
      {
        Line line = entry(now_cycles());
        line << "attention L" << l << " heads " << layer->view.heads << " tokens";
        for (int32_t id : layer->view.original) line << " " << id;
      }
      if (head_cycles == 0) {
        wait_cycles(Cycles(kAttentionCycles));
      } else {
        for (int h = 0; h < layer->view.heads; ++h) {
          while (!gate.ready(l, h)) sc_core::wait(gate.advanced);
          entry(now_cycles()) << "head L" << l << "." << h;
          wait_cycles(Cycles(head_cycles));
        }
      }
      ++barrier.completed;
      barrier.advanced.notify(sc_core::SC_ZERO_TIME);
    }
  }
};

std::vector<std::string> run(const std::vector<std::string>& sets, const std::string& trace_path,
                             uint64_t head_cycles = 0) {
  init_kernel_time();
  Planned p(sets, trace_path);
  SchedulerHarness h("h", p);
  h.head_cycles = head_cycles;
  run_kernel();
  CHECK(h.barrier.completed == kLayers);
  return h.log;
}

using Log = std::vector<std::string>;

// The log sorted by cycle, then by text: with overlap two units act in the same cycle (the
// DMA takes head h as the engine takes projection h+1), in an order of delta cycles the
// fakes do not model.
Log by_cycle(Log log) {
  std::sort(log.begin(), log.end(), [](const std::string& a, const std::string& b) {
    const uint64_t ta = std::stoull(a), tb = std::stoull(b);
    return ta != tb ? ta < tb : a < b;
  });
  return log;
}

}  // namespace

TEST_CASE("attention scope sends no GEMM: per layer the Transkimmer skim job, then the layer to the DMA until the barrier") {
  // skim_keep: layer 0 [1 1 0 1 1] drops token 2 (4 of 5 active); layer 1 [1 0 1 1 0],
  // applied to the active tokens 0 1 3 4, drops 1 and 4 (2 active: 0 and 3).
  //   L0: skim at 0 (scanned 5, forwarded 1) -> 3; attention 3 -> 53; ends at 53.
  //   L1: starts at 53; skim at 53 (scanned 4, forwarded 2) -> 56; attention 56 -> 106.
  const std::string trace = write_trace("masks", {{{1, 1, 0, 1, 1}, {1, 0, 1, 1, 0}}, false, {}});
  const Log log = run({"model.scope=\"attention\"", "skim_controller.mode=\"transkimmer\""}, trace);
  CHECK(log == Log{
                   "0 skim L0 predictor_macs 0 scanned 5 forwarded 1 rank 0 pool 0 adds 0 D 6",
                   "3 attention L0 heads 2 tokens 0 1 3 4",
                   "53 end L0 0..53",
                   "53 skim L1 predictor_macs 0 scanned 4 forwarded 2 rank 0 pool 0 adds 0 D 6",
                   "56 attention L1 heads 2 tokens 0 3",
                   "106 end L1 53..106",
               });
}

TEST_CASE("encoder scope: QKV, attention, out_proj, FFN1 and FFN2 in order, with their shapes and times") {
  // n = 5, D = 6, d_ff = 24; each GEMM 10 cycles, attention 50:
  //   L0: qkv 5x18x6 [0, 10); attention [10, 60); out_proj 5x6x6 [60, 70);
  //       ffn1 5x24x6 [70, 80); ffn2 5x6x24 [80, 90): the layer spans 0..90;
  //   L1: the same 90 cycles later: 90..180.
  const std::string trace = write_trace("plain", {});
  const Log log = run({"model.scope=\"encoder\""}, trace);
  CHECK(log == Log{
                   "0 gemm L0.qkv 5x18x6",
                   "10 attention L0 heads 2 tokens 0 1 2 3 4",
                   "60 gemm L0.out_proj 5x6x6",
                   "70 gemm L0.ffn1 5x24x6",
                   "80 gemm L0.ffn2 5x6x24",
                   "90 end L0 0..90",
                   "90 gemm L1.qkv 5x18x6",
                   "100 attention L1 heads 2 tokens 0 1 2 3 4",
                   "150 gemm L1.out_proj 5x6x6",
                   "160 gemm L1.ffn1 5x24x6",
                   "170 gemm L1.ffn2 5x6x24",
                   "180 end L1 90..180",
               });
}

TEST_CASE("the Transkimmer predictor on the GEMM engine runs as two GEMMs on the tokens before the skim") {
  // The predictor's logits are fc2's bias (skim 1, keep 0) for every token: all but
  // token 0 (always kept) are skimmed in layer 0.
  //   L0: skim_fc1 5x6x6 [0, 10); skim_fc2 5x2x6 [10, 20); skim job (no MACs of its own,
  //       scanned 5, forwarded 4) [20, 23); qkv 1x18x6 [23, 33); attention [33, 83);
  //       out_proj 1x6x6 [83, 93); ffn1 1x24x6 [93, 103); ffn2 1x6x24 [103, 113).
  //   L1 (starts at 113): the predictor sees the one active token: skim_fc1 1x6x6
  //       [113, 123); skim_fc2 1x2x6 [123, 133); skim (scanned 1, forwarded 0)
  //       [133, 136); qkv [136, 146); attention [146, 196); out_proj, ffn1, ffn2 to 226.
  const std::string trace = write_trace("predictor", {{}, true, {1, 0}});
  const Log log = run({"model.scope=\"encoder\"", "skim_controller.mode=\"transkimmer\"",
                       "skim_controller.source=\"predictor\"", "skim_controller.predictor_unit=\"gemm_engine\""},
                      trace);
  CHECK(log == Log{
                   "0 gemm L0.skim_fc1 5x6x6",
                   "10 gemm L0.skim_fc2 5x2x6",
                   "20 skim L0 predictor_macs 0 scanned 5 forwarded 4 rank 0 pool 0 adds 0 D 6",
                   "23 gemm L0.qkv 1x18x6",
                   "33 attention L0 heads 2 tokens 0",
                   "83 gemm L0.out_proj 1x6x6",
                   "93 gemm L0.ffn1 1x24x6",
                   "103 gemm L0.ffn2 1x6x24",
                   "113 end L0 0..113",
                   "113 gemm L1.skim_fc1 1x6x6",
                   "123 gemm L1.skim_fc2 1x2x6",
                   "133 skim L1 predictor_macs 0 scanned 1 forwarded 0 rank 0 pool 0 adds 0 D 6",
                   "136 gemm L1.qkv 1x18x6",
                   "146 attention L1 heads 2 tokens 0",
                   "196 gemm L1.out_proj 1x6x6",
                   "206 gemm L1.ffn1 1x24x6",
                   "216 gemm L1.ffn2 1x6x24",
                   "226 end L1 113..226",
               });
}

TEST_CASE("FCA's skim job follows out_proj, and the FFN and the next layer run on the R + C tokens it leaves") {
  // keep = [3, 2] (R_l), one coarse group. The fake DMA computes no head, so every FCA
  // score is 0 and ties go to the lower index: layer 0 keeps tokens 0 1 2 and pools 3, 4
  // into one coarse token (n' = 3 + 1 = 4); layer 1 keeps 0 1 and pools the other two
  // (n' = 2 + 1 = 3).
  // Skim job: rank n * ceil(log2 n) (5*3 = 15, 4*2 = 8), pool tail * D (2*6 = 12 both),
  // score adds H * n * n (2*25 = 50, 2*16 = 32).
  //   L0: qkv 5x18x6 [0, 10); attention [10, 60); out_proj 5x6x6 [60, 70); skim [70, 73);
  //       ffn1 4x24x6 [73, 83); ffn2 4x6x24 [83, 93).
  //   L1: qkv 4x18x6 [93, 103); attention over 0 1 2 and the coarse token (-1)
  //       [103, 153); out_proj 4x6x6 [153, 163); skim [163, 166); ffn1 3x24x6 [166, 176);
  //       ffn2 3x6x24 [176, 186).
  const std::string trace = write_trace("fca", {});
  const Log log = run({"model.scope=\"encoder\"", "skim_controller.mode=\"fca\"", "skim_controller.keep=[3, 2]",
                       "skim_controller.groups=1"},
                      trace);
  CHECK(log == Log{
                   "0 gemm L0.qkv 5x18x6",
                   "10 attention L0 heads 2 tokens 0 1 2 3 4",
                   "60 gemm L0.out_proj 5x6x6",
                   "70 skim L0 predictor_macs 0 scanned 0 forwarded 0 rank 15 pool 12 adds 50 D 6",
                   "73 gemm L0.ffn1 4x24x6",
                   "83 gemm L0.ffn2 4x6x24",
                   "93 end L0 0..93",
                   "93 gemm L1.qkv 4x18x6",
                   "103 attention L1 heads 2 tokens 0 1 2 -1",
                   "153 gemm L1.out_proj 4x6x6",
                   "163 skim L1 predictor_macs 0 scanned 0 forwarded 0 rank 8 pool 12 adds 32 D 6",
                   "166 gemm L1.ffn1 3x24x6",
                   "176 gemm L1.ffn2 3x6x24",
                   "186 end L1 93..186",
               });
}

TEST_CASE("qkv_head_columns: 3D/H per head, the remainder to the first heads") {
  CHECK(qkv_head_columns(6, 2, 0) == 9);
  CHECK(qkv_head_columns(6, 2, 1) == 9);
  CHECK(qkv_head_columns(768, 12, 11) == 192);  // BERT-base: 3d = 192
  CHECK(qkv_head_columns(5, 2, 0) == 8);        // 15 columns: 8 + 7
  CHECK(qkv_head_columns(5, 2, 1) == 7);
  CHECK(qkv_head_columns(5, 4, 0) == 4);        // 15 columns: 4 + 4 + 4 + 3
  CHECK(qkv_head_columns(5, 4, 3) == 3);
}

TEST_CASE("overlap_gemm: per-head QKV jobs, and the DMA starts head h when its projection ends") {
  // H = 2 heads, 3D = 18: two jobs 5x9x6, each 10 cycles; each head's attention 25 cycles.
  //   L0: the layer goes to the DMA at 0, as qkv.h0 starts [0, 10); head 0 starts at 10
  //       [10, 35) while qkv.h1 runs [10, 20); head 1 waits for head 0 [35, 60) (the
  //       barrier: 60); out_proj [60, 70); ffn1 [70, 80); ffn2 [80, 90): the layer spans
  //       0..90 (without overlap: 10 + 50 + 30 = 90 as well, but there the attention is
  //       one 50-cycle block; here the heads take 50 and overlap qkv.h1).
  //   L1: the same 90 cycles later.
  const std::string trace = write_trace("overlap", {});
  const Log log = by_cycle(run({"model.scope=\"encoder\"", "pipeline.overlap_gemm=true"}, trace, 25));
  CHECK(log == Log{
                   "0 attention L0 heads 2 tokens 0 1 2 3 4",
                   "0 gemm L0.qkv.h0 5x9x6",
                   "10 gemm L0.qkv.h1 5x9x6",
                   "10 head L0.0",
                   "35 head L0.1",
                   "60 gemm L0.out_proj 5x6x6",
                   "70 gemm L0.ffn1 5x24x6",
                   "80 gemm L0.ffn2 5x6x24",
                   "90 attention L1 heads 2 tokens 0 1 2 3 4",
                   "90 end L0 0..90",
                   "90 gemm L1.qkv.h0 5x9x6",
                   "100 gemm L1.qkv.h1 5x9x6",
                   "100 head L1.0",
                   "125 head L1.1",
                   "150 gemm L1.out_proj 5x6x6",
                   "160 gemm L1.ffn1 5x24x6",
                   "170 gemm L1.ffn2 5x6x24",
                   "180 end L1 90..180",
               });
}

TEST_CASE("overlap_gemm: a head whose projection is not done waits for it") {
  // Each head's attention 4 cycles, shorter than a projection (10):
  //   qkv.h0 [0, 10); head 0 [10, 14); qkv.h1 [10, 20); head 1 waits for the gate until
  //   20: [20, 24); out_proj [24, 34); ffn1 [34, 44); ffn2 [44, 54). Layer 1 from 54.
  const std::string trace = write_trace("overlap_wait", {});
  const Log log = by_cycle(run({"model.scope=\"encoder\"", "pipeline.overlap_gemm=true"}, trace, 4));
  REQUIRE(log.size() == 18);
  CHECK(Log(log.begin(), log.begin() + 10) == Log{
                                                 "0 attention L0 heads 2 tokens 0 1 2 3 4",
                                                 "0 gemm L0.qkv.h0 5x9x6",
                                                 "10 gemm L0.qkv.h1 5x9x6",
                                                 "10 head L0.0",
                                                 "20 head L0.1",
                                                 "24 gemm L0.out_proj 5x6x6",
                                                 "34 gemm L0.ffn1 5x24x6",
                                                 "44 gemm L0.ffn2 5x6x24",
                                                 "54 attention L1 heads 2 tokens 0 1 2 3 4",
                                                 "54 end L0 0..54",
                                             });
  CHECK(log.back() == "108 end L1 54..108");
}

TEST_CASE("overlap_gemm changes nothing in attention scope") {
  const std::string trace = write_trace("overlap_attention", {});
  const Log log = run({"model.scope=\"attention\"", "pipeline.overlap_gemm=true"}, trace);
  CHECK(log == Log{
                   "0 attention L0 heads 2 tokens 0 1 2 3 4",
                   "50 end L0 0..50",
                   "50 attention L1 heads 2 tokens 0 1 2 3 4",
                   "100 end L1 50..100",
               });
}
