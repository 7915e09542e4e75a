#pragma once
// A QK unit setup for tests that need the head model but not its filter: dense
// bit-parallel scoring of `bits`-bit values on L = 2 lanes (every row keeps every key;
// ceil(keys / 2) cycles), a comparator that never filters (gamma 0.01, theta 0), 64 keys
// a cycle, and a reuse buffer that is never the bottleneck.
#include "arch/qk_unit.h"

namespace attnsim::test {

inline QkSetup dense_qk_setup(int bits) {
  QkSetup s;
  s.qk = {QkType::bit_parallel, QkMode::dense, bits, 4, 2, LaneSync::lockstep};
  s.comparator.gamma = 0.01;
  s.comparator.theta = 0;
  s.comparator.keys_per_cycle = 64;
  s.comparator.latency_cycles = 1;
  s.reuse = {4096, 16, 32};
  return s;
}

}  // namespace attnsim::test
