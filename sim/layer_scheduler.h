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
// rows is skipped (it cannot occur: token 0 is never skimmed, so a layer keeps a token). The layer's span
// is from the start of step 1 to the end of step 6.
#include "arch/dma.h"
#include "arch/gemm_engine.h"
#include "arch/skim_controller.h"
#include "core/cycles.h"
#include "sim/layer_plan.h"

#include <systemc>

#include <exception>
#include <functional>
#include <memory>

namespace attnsim {

class LayerScheduler : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_out<std::shared_ptr<const LayerContext>> layer_out;
  sc_core::sc_fifo_out<GemmJob> gemm_out;
  sc_core::sc_fifo_in<GemmJob> gemm_done;
  sc_core::sc_fifo_out<SkimJob> skim_out;
  sc_core::sc_fifo_in<SkimJob> skim_done;

  // `on_layer_end(l, start, end)` is called when layer l's last step ends. An exception
  // from the functional model (a bad trace value) stops the simulation and is kept in
  // `error` for the caller to rethrow: SystemC would otherwise wrap it in a report.
  LayerScheduler(sc_core::sc_module_name name, int layers, bool encoder, bool predictor_on_gemm,
                 LayerPlanner& planner, LayerBarrier& barrier,
                 std::function<void(int, Cycles, Cycles)> on_layer_end, std::exception_ptr& error);

 private:
  void run();
  void schedule_layer(int l);
  void gemm(const std::string& name, uint64_t m, uint64_t n, uint64_t k);
  void skim(const SkimJob& job);

  int layers_;
  bool encoder_;
  bool predictor_on_gemm_;
  LayerPlanner& planner_;
  LayerBarrier& barrier_;
  std::function<void(int, Cycles, Cycles)> on_layer_end_;
  std::exception_ptr& error_;
};

}  // namespace attnsim
