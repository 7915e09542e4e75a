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
  // When true: per layer, input hidden states layers.{l}.hidden [N, D] (D = heads x
  // head_dim; F32, F16 or BF16 as dtype, F32 for I8) and Transkimmer predictor weights
  // layers.{l}.skim_predictor.{ln1,fc1,ln2,fc2}.{weight,bias} (F32, PyTorch layout).
  // The predictor's keep-minus-skim logit follows the projection of the normalized hidden
  // state on a per-layer direction; its bias is calibrated so that, with cumulative masks
  // (token 0 always kept), each layer keeps 1 + round(predictor_keep x (n - 1)) of the n
  // tokens that reach it (docs/traces.md). Needs D >= 2 and tokens x D^2 <= 2^34.
  bool predictor = false;
  double predictor_keep = 0.75;  // in [0, 1]; used with predictor
  // Mechanism tensors (SEMANTICS §1), per layer and head, F32 (0: none):
  //  - tree_depth D: Treeformer trees layers.{l}.tree.{h}.w [2^D-1, d] and .b [2^D-1]; each
  //    node's w is Gaussian and its b = -(median of w . k over the keys that reach it), so
  //    the head's keys fill the leaves evenly;
  //  - lsh_rounds R: Gaussian LSH directions layers.{l}.lsh.{h}.proj [R, d];
  //  - performer_features m (even): Gaussian Performer matrix layers.{l}.performer.{h}.w [m/2, d].
  int tree_depth = 0;
  int lsh_rounds = 0;
  int performer_features = 0;
  std::string model = "synthetic";
};

// Deterministic: the same options give byte-identical files.
void write_synthetic_trace(const SynthOptions& options, const std::string& path);

HeadPattern parse_head_pattern(const std::string& name);  // throws std::invalid_argument
const char* head_pattern_name(HeadPattern p);

}  // namespace attnsim
