#pragma once
// How much memory a run will take, estimated before anything runs, so that a trace or a
// config too large for the machine is refused with the figure it would need instead of
// being killed by the kernel (or taking the machine down) hours into a sweep.
//
// The estimate counts the simulation's data, not the process (SystemC, the binary, the
// trace file, which is mapped and read from the page cache): per layer, the largest of
//   layer tensors      the loaded layer, q/k/v quantized (2 bytes) and, for float traces,
//                      as floats (4 bytes), twice (the copy the layer planner makes, or
//                      with skimming the unreduced layer kept for quality)
//   FCA probabilities  N x N doubles of head-mean attention (skim_controller.mode "fca")
//   heads in flight    sram slots + 1 heads: per row its outcome, per query block its cost,
//                      per row and key tile its part (K/V tiling), the candidate
//                      generator's state (LSH candidate lists, Treeformer TC outputs)
//   head being loaded  dequantized V (and Q, K for generators and the low-rank unit),
//                      LATTE's truncated K, the low-rank features
//   row scratch        per thread and query-block row: the row's candidates, scores,
//                      decisions, probabilities and the quality reference (80 bytes a key)
// plus, with --masks, the recorded masks of the whole run. docs/reliability.md#memory-cap.
#include "sim/config.h"
#include "sim/layer_plan.h"
#include "workloads/trace.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnsim {

struct MemoryPart {
  std::string what;
  double bytes = 0;
};

struct MemoryEstimate {
  double bytes = 0;               // the largest layer's total (+ masks)
  int layer = 0;                  // that layer
  std::vector<MemoryPart> parts;  // its parts, in the order above (zero parts left out)
};

// `threads`: as given to the run (0: one per core); `masks`: `attnsim run --masks`.
MemoryEstimate estimate_run_memory(const Config& c, const Trace& trace, const RunPlan& plan, int threads,
                                   bool masks);

// "1.21 GiB", "512 KiB", "980 bytes": three significant digits, binary units.
std::string bytes_text(double bytes);

// Throws SimulationError naming the trace, the estimate, its parts and the cap when the
// estimate exceeds `cap_bytes` (0: no cap). `cap_source` says where the cap came from.
void check_memory_cap(const MemoryEstimate& e, uint64_t cap_bytes, const std::string& cap_source,
                      const std::string& trace_path);

// Half of the memory this process may use: the smaller of the machine's RAM and the
// cgroup's memory.max (a container's or a Slurm job's limit). 0 when neither is known.
uint64_t default_memory_cap();

// A size as a person writes it: "512MiB", "8GiB", "1.5G", "4096" (bytes); K, M, G, T with
// or without "iB" are binary units. "unlimited" gives 0 (no cap). Throws
// std::invalid_argument on anything else.
uint64_t parse_memory_size(const std::string& text);

}  // namespace attnsim
