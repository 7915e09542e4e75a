#pragma once
// Synthetic traces with realistic per-head attention shapes, for demos, tests and
// benchmarks (`attnsim trace synth`).
#include "workloads/safetensors.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnsim {

// Attention shape of one head.
//  peaked:   each query concentrates on a few content-matched keys
//  local:    probability decays with |i - j| (sliding-window-like heads)
//  diagonal: each query attends mostly to itself / its predecessor
//  uniform:  near-uniform attention (high entropy)
enum class HeadPattern { Peaked, Local, Diagonal, Uniform };

struct SynthOptions {
  int layers = 2;
  int heads = 4;
  int tokens = 64;      // N = M
  int head_dim = 32;    // d
  uint64_t seed = 1;
  DType dtype = DType::F16;      // F32, F16, BF16 or I8 (I8 writes metadata scales)
  bool causal = false;
  // Patterns cycled over heads (head h gets patterns[h % size]); empty = all four.
  std::vector<HeadPattern> patterns;
  // Softmax temperature multiplier: < 1 sharper, > 1 flatter. Ignored when
  // entropy_target > 0.
  double temperature = 1.0;
  // When > 0: per head, the temperature is searched so that the mean row entropy of
  // the attention, in nats, is this fraction of log(N) (0..1).
  double entropy_target = 0.0;
  // When > 0: Transkimmer keep masks layers.{l}.skim_keep, cumulative: token t (t > 0)
  // draws u_t in [0, 1) once and is kept at layer l iff u_t < skim_keep^l, so layer 0
  // keeps every token and layer l about skim_keep^l of them. Token 0 is always kept.
  double skim_keep = 0.0;
  std::string model = "synthetic";
};

// Deterministic: the same options give byte-identical files.
void write_synthetic_trace(const SynthOptions& options, const std::string& path);

HeadPattern parse_head_pattern(const std::string& name);  // throws std::invalid_argument
const char* head_pattern_name(HeadPattern p);

}  // namespace attnsim
