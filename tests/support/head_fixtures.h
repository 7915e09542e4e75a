#pragma once
// Fixtures for tests that run the head model on hand data.
//
// dense_qk_setup: a QK unit setup for tests that need the head model but not its filter: dense
// bit-parallel scoring of `bits`-bit values on L = 2 lanes (every row keeps every key;
// ceil(keys / 2) cycles), a comparator that never filters (gamma 0.01, theta 0), 64 keys
// a cycle, and a reuse buffer that is never the bottleneck.
#include "arch/pipeline.h"
#include "arch/qk_unit.h"

#include <memory>

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

// Layer 0 of `heads` heads of N = 3 queries, M = 2 keys, d = 3, each head the same
// quantized values (they fit B = 5 bits), scales 1, margins and thresholds 0.
inline std::shared_ptr<const LayerContext> tiny_layer(int heads) {
  auto ctx = std::make_shared<LayerContext>();
  LayerView& v = ctx->view;
  v.index = 0, v.heads = heads, v.n = 3, v.m = 2, v.d = 3;
  for (int h = 0; h < heads; ++h) {
    HeadData data;
    data.q = {1, -2, 3, 0, 4, -5, 7, 7, -1};
    data.k = {2, 0, -3, -1, 5, 6};
    data.v = {15, -16, 0, 3, 2, 1};
    v.head.push_back(data);
    ctx->margin.push_back(0);
    ctx->theta.push_back(0);
  }
  return ctx;
}

}  // namespace attnsim::test
