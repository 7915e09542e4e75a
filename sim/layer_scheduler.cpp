#include "sim/layer_scheduler.h"

#include "arch/kernel_time.h"
#include "arch/sc_threads.h"

namespace attnsim {

uint64_t qkv_head_columns(uint64_t d_model, int heads, int h) {
  const uint64_t columns = 3 * d_model, H = static_cast<uint64_t>(heads);
  return columns / H + (static_cast<uint64_t>(h) < columns % H ? 1 : 0);
}

LayerScheduler::LayerScheduler(sc_core::sc_module_name name, int layers, bool encoder,
                               bool predictor_on_gemm, bool overlap_gemm, LayerPlanner& planner,
                               LayerBarrier& barrier, ProjectionGate& gate,
                               std::function<void(int, Cycles, Cycles)> on_layer_end)
    : sc_module(name),
      layers_(layers),
      encoder_(encoder),
      predictor_on_gemm_(predictor_on_gemm),
      overlap_(encoder && overlap_gemm),
      gate_(gate),
      planner_(planner),
      barrier_(barrier),
      on_layer_end_(std::move(on_layer_end)) {
  SC_HAS_PROCESS(LayerScheduler);
  SC_THREAD(run);
}

void LayerScheduler::run() {
  run_thread_body([this] {
    for (int l = 0; l < layers_; ++l) schedule_layer(l);
  });
}

void LayerScheduler::gemm(const std::string& name, uint64_t m, uint64_t n, uint64_t k) {
  if (m == 0) return;
  gemm_out->write(GemmJob{name, m, n, k});
  gemm_done->read();
}

void LayerScheduler::project_heads_during_attention(int l, const std::string& tag, uint64_t n,
                                                    const std::shared_ptr<LayerContext>& context) {
  const int heads = context->view.heads;
  const uint64_t d = planner_.d_model();
  gate_.layer = l;
  gate_.projected = 0;
  layer_out->write(context);  // the DMA waits at the gate for each head
  for (int h = 0; h < heads; ++h) {
    gemm(tag + "qkv.h" + std::to_string(h), n, qkv_head_columns(d, heads, h), d);
    gate_.projected = h + 1;
    gate_.advanced.notify(sc_core::SC_ZERO_TIME);
  }
}

void LayerScheduler::skim(const SkimJob& job) {
  skim_out->write(job);
  skim_done->read();
}

void LayerScheduler::schedule_layer(int l) {
  const Cycles start = now_cycles();
  const std::string tag = "L" + std::to_string(l) + ".";
  const uint64_t d = planner_.d_model(), ff = planner_.d_ff();

  const LayerStart ls = planner_.begin_layer(l);
  if (ls.predictor_tokens > 0 && predictor_on_gemm_) {
    gemm(tag + "skim_fc1", ls.predictor_tokens, d, d);
    gemm(tag + "skim_fc2", ls.predictor_tokens, 2, d);
  }
  if (ls.skim_job) skim(ls.job);
  const uint64_t n = ls.active;
  if (overlap_) {
    project_heads_during_attention(l, tag, n, ls.context);
  } else {
    if (encoder_) gemm(tag + "qkv", n, 3 * d, d);
    layer_out->write(ls.context);
  }
  while (barrier_.completed <= l) sc_core::wait(barrier_.advanced);

  if (encoder_) gemm(tag + "out_proj", n, d, d);
  const LayerEnd le = planner_.end_layer(l);
  if (le.skim_job) skim(le.job);
  if (encoder_) {
    gemm(tag + "ffn1", le.tokens_after, ff, d);
    gemm(tag + "ffn2", le.tokens_after, d, ff);
  }
  on_layer_end_(l, start, now_cycles());
}

}  // namespace attnsim
