#pragma once
// The layer scheduler: sequences each layer's steps on the units (SystemC thread).
//
// Per layer l (encoder scope adds the GEMM steps; attention scope skips them):
//   1. Transkimmer: the skim controller predicts and compacts (predictor on its own MAC
//      array, or as two GEMM jobs: [n x D] x [D x D] and [n x D] x [D x 2]);
//   2. QKV projection on the GEMM engine: [n x D] x [D x 3D];
//   3. attention: the layer goes to the DMA; the scheduler waits until its last output
//      row has landed (LayerBarrier);
//   4. output projection [n x D] x [D x D];
//   5. FCA: the skim controller ranks and pools (n -> R_l + C tokens);
//   6. FFN [n' x D] x [D x d_ff] and [n' x d_ff] x [d_ff x D].
// Steps run one after another (each needs the previous one's output); a GEMM of M = 0
// rows is skipped (it cannot occur: token 0 is never skimmed, so a layer keeps a token).
// The layer's span is from the start of step 1 to the end of step 6.
//
// pipeline.overlap_gemm (encoder scope) overlaps steps 2 and 3 head by head. Step 2 is
// split into H jobs "L<l>.qkv.h<h>", head h's projection [n x D] x [D x w_h] with
// w_h = 3D/H columns (3d when D = H x d; when H does not divide 3D the first 3D mod H
// heads take one column more, so the H jobs have the one GEMM's MACs). Dependencies:
//   - projection h starts when projection h-1 has ended (the engine takes one job at a
//     time), projection 0 when the layer starts (after step 1, if any);
//   - the layer goes to the DMA when projection 0 starts; the DMA starts on head h once
//     projection h has ended (its results are in DRAM: the job's end includes its last
//     write's latency; ProjectionGate) and, as always, an SRAM slot is free. When
//     projection h ends, the scheduler opens the gate before it hands the engine
//     projection h+1, so on the shared DRAM channel the DMA's first burst of head h is
//     requested (a delta cycle) before the engine's first burst of h+1 and goes first;
//   - heads then flow through the attention datapath as always, so head h's load and
//     attention run while the engine projects heads h+1, h+2, ...;
//   - step 4 waits, as always, until the layer's last output row has landed, which is
//     after every projection.
// "When buffers allow": the projections write Q, K and V to DRAM, so the engine needs no
// Q/K/V slot to run ahead; each head's job needs only the engine's operand buffer
// (gemm_engine.sram_kib, the traffic rule of arch/gemm_math.h decides whether A, B_h and
// C_h fit or are tiled; every head's job reads the n x D activations A again), and the
// engine projects the layer's heads back to back however far the attention lags. The
// SRAM slots bound only the DMA: with two (double buffering) head h is loaded while head
// h-1 is scored, with one the load waits for the slot. In attention scope the flag
// changes nothing; off (default), step 2 is the one QKV GEMM, as above.
#include "arch/dma.h"
#include "arch/gemm_engine.h"
#include "arch/skim_controller.h"
#include "core/cycles.h"
#include "sim/layer_plan.h"

#include <systemc>

#include <functional>
#include <memory>

namespace attnsim {

// Columns of head h's share of the QKV projection's 3D output columns: 3D/H, the first
// 3D mod H heads one more (3d each when D = H x d).
uint64_t qkv_head_columns(uint64_t d_model, int heads, int h);

class LayerScheduler : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_out<std::shared_ptr<const LayerContext>> layer_out;
  sc_core::sc_fifo_out<GemmJob> gemm_out;
  sc_core::sc_fifo_in<GemmJob> gemm_done;
  sc_core::sc_fifo_out<SkimJob> skim_out;
  sc_core::sc_fifo_in<SkimJob> skim_done;

  // `on_layer_end(l, start, end)` is called when layer l's last step ends. An exception
  // from the functional model (a bad trace value) stops the simulation; run_kernel()
  // rethrows it (arch/sc_threads.h).
  // `gate`: the per-head projections' progress for the DMA; used when `overlap_gemm` (and
  // encoder scope), else untouched.
  LayerScheduler(sc_core::sc_module_name name, int layers, bool encoder, bool predictor_on_gemm,
                 bool overlap_gemm, LayerPlanner& planner, LayerBarrier& barrier, ProjectionGate& gate,
                 std::function<void(int, Cycles, Cycles)> on_layer_end);

 private:
  void run();
  void schedule_layer(int l);
  void gemm(const std::string& name, uint64_t m, uint64_t n, uint64_t k);
  void skim(const SkimJob& job);
  // Step 2 and 3 with overlap_gemm: the DMA gets the layer, the engine projects it head by
  // head and the gate follows.
  void project_heads_during_attention(int l, const std::string& tag, uint64_t n,
                                      const std::shared_ptr<LayerContext>& context);

  int layers_;
  bool encoder_;
  bool predictor_on_gemm_;
  bool overlap_;
  ProjectionGate& gate_;
  LayerPlanner& planner_;
  LayerBarrier& barrier_;
  std::function<void(int, Cycles, Cycles)> on_layer_end_;
};

}  // namespace attnsim
