#include "arch/skim_math.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>

namespace attnsim::skim {

namespace {

[[noreturn]] void invalid(const std::string& what) { throw std::invalid_argument(what); }

// Token 0 is the one whose original id is 0 ([CLS]); it always survives.
bool is_cls(const TokenMix& t) { return t.original == 0; }

void check_predictor(const PredictorWeights& w) {
  const size_t d = w.d_model > 0 ? static_cast<size_t>(w.d_model) : 0;
  if (d == 0) invalid("skim predictor: d_model must be >= 1");
  auto need = [&](const std::vector<float>& v, size_t size, const char* name) {
    if (v.size() != size)
      invalid(std::string("skim predictor: ") + name + " has " + std::to_string(v.size()) +
              " values, expected " + std::to_string(size));
  };
  need(w.ln1_w, d, "ln1.weight");
  need(w.ln1_b, d, "ln1.bias");
  need(w.fc1_w, d * d, "fc1.weight");
  need(w.fc1_b, d, "fc1.bias");
  need(w.ln2_w, d, "ln2.weight");
  need(w.ln2_b, d, "ln2.bias");
  need(w.fc2_w, 2 * d, "fc2.weight");
  need(w.fc2_b, 2, "fc2.bias");
}

// y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance (torch.nn.LayerNorm).
void layer_norm(const double* x, size_t d, const std::vector<float>& weight,
                const std::vector<float>& bias, double* y) {
  double mean = 0;
  for (size_t i = 0; i < d; ++i) mean += x[i];
  mean /= static_cast<double>(d);
  double var = 0;
  for (size_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(d);
  const double inv = 1.0 / std::sqrt(var + kPredictorLayerNormEps);
  for (size_t i = 0; i < d; ++i) y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

// y[o] = sum_i w[o][i] x[i] + b[o], w row-major [out][in].
void linear(const double* x, size_t in, size_t out, const std::vector<float>& w,
            const std::vector<float>& b, double* y) {
  for (size_t o = 0; o < out; ++o) {
    double acc = b[o];
    const float* row = w.data() + o * in;
    for (size_t i = 0; i < in; ++i) acc += static_cast<double>(row[i]) * x[i];
    y[o] = acc;
  }
}

// Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))) (nn.GELU(), approximate='none').
double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// Sizes of `parts` contiguous groups covering `total` items, larger groups first.
std::vector<int> group_sizes(int total, int parts) {
  std::vector<int> sizes(parts, total / parts);
  for (int g = 0; g < total % parts; ++g) ++sizes[g];
  return sizes;
}

// Weights of a group: softmax of its members' scores (max subtracted for stability).
std::vector<std::pair<int, double>> softmax_group(const std::vector<int>& members,
                                                  const std::vector<double>& scores) {
  double top = -INFINITY;
  for (int j : members) top = std::max(top, scores[j]);
  std::vector<std::pair<int, double>> group;
  double sum = 0;
  for (int j : members) {
    const double e = std::exp(scores[j] - top);
    group.emplace_back(j, e);
    sum += e;
  }
  for (auto& m : group) m.second /= sum;
  return group;
}

// Canonical form: parts sorted by id (duplicates merged), `original` set when the token is
// exactly one original with weight 1.
TokenMix canonical(const std::map<int32_t, double>& weights) {
  TokenMix t;
  t.parts.assign(weights.begin(), weights.end());
  if (t.parts.size() == 1 && t.parts[0].second == 1.0) t.original = t.parts[0].first;
  return t;
}

}  // namespace

// ---- Transkimmer ---------------------------------------------------------------------

std::vector<uint8_t> cumulative_keep(const TokenMap& active, const uint8_t* keep_over_original,
                                     int n) {
  std::vector<uint8_t> keep(active.size());
  for (size_t i = 0; i < active.size(); ++i) {
    const int32_t id = active[i].original;
    if (id < 0) invalid("cumulative_keep: active token " + std::to_string(i) +
                        " is a coarse token (Transkimmer masks cover original tokens only)");
    if (id >= n) invalid("cumulative_keep: active token " + std::to_string(i) + " has original id " +
                         std::to_string(id) + ", outside 0.." + std::to_string(n - 1));
    keep[i] = is_cls(active[i]) || keep_over_original[id] != 0;
  }
  return keep;
}

std::vector<uint8_t> cumulative_keep_active(const TokenMap& active,
                                            const std::vector<uint8_t>& keep_per_active) {
  if (keep_per_active.size() != active.size())
    invalid("cumulative_keep_active: " + std::to_string(keep_per_active.size()) + " flags for " +
            std::to_string(active.size()) + " active tokens");
  std::vector<uint8_t> keep(active.size());
  for (size_t i = 0; i < active.size(); ++i) keep[i] = is_cls(active[i]) || keep_per_active[i] != 0;
  return keep;
}

TokenMap surviving_tokens(const TokenMap& active, const std::vector<uint8_t>& keep) {
  if (keep.size() != active.size())
    invalid("surviving_tokens: " + std::to_string(keep.size()) + " flags for " +
            std::to_string(active.size()) + " active tokens");
  TokenMap out;
  for (size_t i = 0; i < active.size(); ++i)
    if (keep[i]) out.push_back(active[i]);
  return out;
}

std::vector<double> predictor_logits(const float* hidden, int n, const PredictorWeights& w) {
  check_predictor(w);
  const size_t d = static_cast<size_t>(w.d_model);
  std::vector<double> logits(2 * static_cast<size_t>(std::max(n, 0)));
  std::vector<double> x(d), a(d), b(d);
  for (int r = 0; r < n; ++r) {
    const float* row = hidden + static_cast<size_t>(r) * d;
    for (size_t i = 0; i < d; ++i) x[i] = row[i];
    layer_norm(x.data(), d, w.ln1_w, w.ln1_b, a.data());
    linear(a.data(), d, d, w.fc1_w, w.fc1_b, b.data());
    layer_norm(b.data(), d, w.ln2_w, w.ln2_b, a.data());
    for (size_t i = 0; i < d; ++i) a[i] = gelu(a[i]);
    linear(a.data(), d, 2, w.fc2_w, w.fc2_b, &logits[2 * static_cast<size_t>(r)]);
  }
  return logits;
}

std::vector<uint8_t> predictor_keep(const float* hidden, int n, const PredictorWeights& w) {
  const std::vector<double> logits = predictor_logits(hidden, n, w);
  std::vector<uint8_t> keep(logits.size() / 2);
  for (size_t r = 0; r < keep.size(); ++r) keep[r] = logits[2 * r + 1] > logits[2 * r];
  return keep;
}

uint64_t predictor_macs(int n, int d_model) {
  const uint64_t d = static_cast<uint64_t>(std::max(d_model, 0));
  return static_cast<uint64_t>(std::max(n, 0)) * (d * d + 2 * d);
}

// ---- FCA -----------------------------------------------------------------------------

std::vector<double> fca_scores(const double* abar, int n) {
  std::vector<double> score(static_cast<size_t>(std::max(n, 0)), 0.0);
  const size_t nn = score.size();
  for (size_t i = 0; i < nn; ++i)
    for (size_t j = 0; j < nn; ++j) score[j] += abar[i * nn + j];
  for (size_t j = 0; j < nn; ++j) score[j] -= abar[j * nn + j];
  return score;
}

FcaSelection fca_select(const std::vector<double>& scores, int keep_r, int groups) {
  if (groups < 1) invalid("fca_select: groups must be >= 1, got " + std::to_string(groups));
  for (size_t j = 0; j < scores.size(); ++j)
    if (!std::isfinite(scores[j]))
      invalid("fca_select: score " + std::to_string(j) + " is not finite");
  const int n = static_cast<int>(scores.size());
  FcaSelection sel;
  const int r = std::max(keep_r, 1);
  if (r >= n) {
    sel.fine.resize(n);
    std::iota(sel.fine.begin(), sel.fine.end(), 0);
    return sel;
  }

  // Rank 1..n-1 by score, ties to the lower index (tf.math.top_k's order).
  std::vector<int> ranked(n - 1);
  std::iota(ranked.begin(), ranked.end(), 1);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [&](int a, int b) { return scores[a] > scores[b]; });
  std::vector<uint8_t> is_fine(n, 0);
  is_fine[0] = 1;
  for (int k = 0; k < r - 1; ++k) is_fine[ranked[k]] = 1;

  std::vector<int> tail;
  for (int j = 0; j < n; ++j) (is_fine[j] ? sel.fine : tail).push_back(j);

  const int count = std::min(groups, static_cast<int>(tail.size()));
  size_t next = 0;
  for (int size : group_sizes(static_cast<int>(tail.size()), count)) {
    const std::vector<int> members(tail.begin() + next, tail.begin() + next + size);
    sel.groups.push_back(softmax_group(members, scores));
    next += size;
  }
  return sel;
}

TokenMap fca_next_map(const TokenMap& current, const FcaSelection& selection) {
  auto at = [&](int i) -> const TokenMix& {
    if (i < 0 || static_cast<size_t>(i) >= current.size())
      invalid("fca_next_map: active index " + std::to_string(i) + " outside 0.." +
              std::to_string(static_cast<long>(current.size()) - 1));
    return current[i];
  };
  TokenMap next;
  for (int i : selection.fine) next.push_back(at(i));
  for (const auto& group : selection.groups) {
    std::map<int32_t, double> weights;
    for (const auto& member : group)
      for (const auto& part : at(member.first).parts) weights[part.first] += member.second * part.second;
    next.push_back(canonical(weights));
  }
  return next;
}

int fca_keep_count(const KeepRule& rule, int layer, int n) {
  if (n < 1) return 0;
  int64_t r;
  if (rule.per_layer) {
    if (layer < 0 || static_cast<size_t>(layer) >= rule.counts.size())
      invalid("skim_controller.keep: no R_l for layer " + std::to_string(layer) + " (the list has " +
              std::to_string(rule.counts.size()) + " entries)");
    r = rule.counts[layer];
  } else {
    if (!(rule.fraction > 0.0 && rule.fraction <= 1.0))
      invalid("skim_controller.keep: fraction must be in (0, 1], got " + std::to_string(rule.fraction));
    r = static_cast<int64_t>(std::ceil(rule.fraction * n - 1e-9));
  }
  return static_cast<int>(std::clamp<int64_t>(r, 1, n));
}

}  // namespace attnsim::skim
