#pragma once
// Functional model of the token-skim controller (SEMANTICS §5, Transkimmer and FCA): which
// tokens a layer processes and what the coarse tokens are made of. Pure C++, no SystemC;
// arch/skim_controller.h costs these decisions. docs/skimming.md states every rule, the
// official code it follows and where it departs from it.
//
// Index conventions: an "active" index is a position in the layer's TokenMap (the tokens
// the layer processes, in order); an "original" id is a token of the trace (0..N-1).
#include "workloads/skim_types.h"

#include <cstdint>
#include <vector>

namespace attnsim::skim {

// ---- Transkimmer ---------------------------------------------------------------------

// Keep flag per ACTIVE token from flags over the ORIGINAL tokens (a trace's skim_keep):
// a token survives iff its original's flag is 1; the token whose original is 0 ([CLS]) is
// always kept. Masks are cumulative because the caller passes only the tokens still active
// (a dropped token is not in `active`, so it can never come back). Throws
// std::invalid_argument for a coarse token (no original to look up) or an id outside 0..n-1.
std::vector<uint8_t> cumulative_keep(const TokenMap& active, const uint8_t* keep_over_original,
                                     int n);

// The same from flags per ACTIVE token (e.g. predictor_keep's output): token 0 forced to 1.
std::vector<uint8_t> cumulative_keep_active(const TokenMap& active,
                                            const std::vector<uint8_t>& keep_per_active);

// The tokens that survive: active[i] for every i with keep[i] = 1, in order.
TokenMap surviving_tokens(const TokenMap& active, const std::vector<uint8_t>& keep);

// LayerNorm epsilon of the predictor: nn.LayerNorm's default (1e-5), which the official
// SkimPredictor uses (not BERT's 1e-12).
inline constexpr double kPredictorLayerNormEps = 1e-5;

// Logits [n][2] (0 = skim, 1 = keep) of the predictor on rows hidden[n][D], in double;
// LayerNorm with biased variance, GELU in its exact erf form (nn.GELU's default).
std::vector<double> predictor_logits(const float* hidden, int n, const PredictorWeights& w);

// keep[i] = 1 iff logit_keep > logit_skim (argmax; a tie skims, as torch.argmax picks the
// first). Throws std::invalid_argument when the weights' sizes do not match d_model.
std::vector<uint8_t> predictor_keep(const float* hidden, int n, const PredictorWeights& w);

// MACs of the predictor on n tokens: n * (D*D + 2*D) (fc1 and fc2; LayerNorms and GELU
// are not MACs).
uint64_t predictor_macs(int n, int d_model);

// ---- FCA -----------------------------------------------------------------------------

// score_j = sum_i Abar[i][j] - Abar[j][j] ("attended by" in pierre-zhao/FCA-BERT), with
// abar [n x n] row-major (rows: queries, columns: keys) over the active tokens.
std::vector<double> fca_scores(const double* abar, int n);

struct FcaSelection {
  // Active indices kept as they are, in position order (index 0 included).
  std::vector<int> fine;
  // Coarse groups, in position order; each lists (active index, weight) in position
  // order with weights summing to 1.
  std::vector<std::vector<std::pair<int, double>>> groups;
};

// Keeps index 0 and the keep_r - 1 best other indices (highest score; ties: lower index);
// keep_r < 1 counts as 1, keep_r >= n keeps everything (no groups). The tail (the rest,
// in position order) is split into min(groups, tail) contiguous groups whose sizes differ
// by at most one, larger groups first; each group's weights are softmax(score[tail])
// restricted to the group and renormalized (= a softmax over the group's scores).
// Throws std::invalid_argument for groups < 1 or a non-finite score.
FcaSelection fca_select(const std::vector<double>& scores, int keep_r, int groups);

// The next layer's tokens: the fine tokens (current[fine[i]]) then one coarse token per
// group, each the weighted sum of its members' mixes, so every token is a combination of
// ORIGINAL tokens (a coarse token of coarse tokens composes).
TokenMap fca_next_map(const TokenMap& current, const FcaSelection& selection);

// skim_controller.keep: a fraction f in (0, 1] of the layer's active tokens, or an
// explicit R_l per layer.
struct KeepRule {
  bool per_layer = false;            // false: fraction
  double fraction = 0.5;
  std::vector<int64_t> counts;       // R_l, one per layer, when per_layer
};

// R for layer `layer` with n active tokens, in 1..n: fraction -> ceil(f * n) (computed as
// ceil(f * n - 1e-9) so that 0.3 * 10 gives 3, not 4); list -> counts[layer] clamped to
// 1..n. Throws std::invalid_argument for f outside (0, 1] or a layer past the list.
int fca_keep_count(const KeepRule& rule, int layer, int n);

}  // namespace attnsim::skim
