#pragma once
// Data types shared by the trace reader (workloads/trace.h) and the token-skim math
// (arch/skim_math.h), kept here so that workloads/ does not depend on arch/.
// docs/skimming.md describes how they are used.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace attnsim::skim {

// One active token of a (possibly reduced) layer, as a weighted combination of the
// ORIGINAL tokens of the trace (ids 0..N-1). `parts` is sorted by original id, weights
// are positive and sum to 1. `original` is the id when the token is exactly one original
// token with weight 1 (a fine token), -1 for a coarse (pooled) token.
struct TokenMix {
  std::vector<std::pair<int32_t, double>> parts;
  int32_t original = -1;
  bool operator==(const TokenMix& o) const { return parts == o.parts && original == o.original; }
  bool operator!=(const TokenMix& o) const { return !(*this == o); }
};

// The active tokens of a layer, in the order the layer processes them.
using TokenMap = std::vector<TokenMix>;

inline TokenMix fine_token(int32_t id) {
  TokenMix t;
  t.parts.emplace_back(id, 1.0);
  t.original = id;
  return t;
}

// Tokens 0..n-1, each itself: the unreduced layer.
inline TokenMap identity_map(int n) {
  TokenMap map;
  map.reserve(n > 0 ? static_cast<size_t>(n) : 0);
  for (int i = 0; i < n; ++i) map.push_back(fine_token(i));
  return map;
}

inline bool is_identity(const TokenMap& map, int n) {
  if (n < 0 || map.size() != static_cast<size_t>(n)) return false;
  for (int i = 0; i < n; ++i)
    if (map[i] != fine_token(i)) return false;
  return true;
}

// Transkimmer skim predictor of one layer (ChandlerGuan/Transkimmer,
// src/module/modeling_skim_predictor.py): LayerNorm(D) -> Linear(D, D) -> LayerNorm(D) ->
// GELU -> Linear(D, 2). Linear weights in PyTorch layout [out][in], row-major. Logit 0 is
// "skim", logit 1 is "keep" (the code takes gumbel_softmax(...)[:, :, 1] as the keep mask).
struct PredictorWeights {
  int d_model = 0;
  std::vector<float> ln1_w, ln1_b;  // [D]
  std::vector<float> fc1_w, fc1_b;  // [D][D], [D]
  std::vector<float> ln2_w, ln2_b;  // [D]
  std::vector<float> fc2_w, fc2_b;  // [2][D], [2]
};

}  // namespace attnsim::skim
