#pragma once
// Pure functional rules of the low-rank unit (Scatterbrain's Performer part, SEMANTICS §5),
// no SystemC; arch/lowrank_unit.h is the unit, docs/candidates.md the rules.
//
// Features: x' = x d^(-1/4), phi(x) = exp([W x', -W x'] - |x'|^2 / 2) / sqrt(m), W [m/2, d],
// so phi(q) . phi(k) estimates exp(q . k / sqrt(d)). Row i combines the exact part over
// its survivors K_i with the low-rank part over every key it may see:
//   o_i = (sum_{j in K_i} (e_ij - phi_i.phi_j) v_j + phi_i . sum_j phi_j v_j^T)
//       / (sum_{j in K_i} (e_ij - phi_i.phi_j)     + phi_i . sum_j phi_j),
// e_ij = exp of the exact scaled score. Computed stably in the log domain: features are
// kept as logarithms, the key sums with one shift per feature (its largest log-feature
// over the keys summed: all of the head's keys, or the causal prefix 0..i, rescaled when a
// key raises it), and each row divides out exp(c_i), c_i the largest of its survivors'
// scores and of the log of its low-rank normalizer terms; then every exponent is <= 0.
#include "workloads/trace.h"

#include <cstdint>
#include <vector>

namespace attnsim::lowrank {

// Seeded Gaussian feature matrix W [m/2, d] (stream (seed, layer, head) of core/random.h),
// used when the trace has none.
Matrix gaussian_features(int half, int d, uint64_t seed, int layer, int head);

// log phi(x) for x of d values: out[f] = w_f.x' - |x'|^2/2 - ln(m)/2 and
// out[m/2 + f] = -w_f.x' - |x'|^2/2 - ln(m)/2, f < m/2.
void log_features(const Matrix& w, const double* x, int d, double* out);

// Shifted key sums over a set of keys: per feature the shift sigma_f (the largest
// log-feature of the keys summed), S_f = sum_j exp(log phi_j,f - sigma_f) and
// Sv_f,t = sum_j exp(log phi_j,f - sigma_f) v_j,t.
struct KeySums {
  std::vector<double> sigma, sum, sum_v;  // m, m, m x d
};

// One head's key side: every key's log-features and the sums over all of its keys (causal
// rows keep their own running prefix, KeyPrefix).
class HeadSummary {
 public:
  // k and v: dequantized rows [m_keys x d].
  HeadSummary(const Matrix& w, const double* k, const double* v, int m_keys, int d);

  int features() const { return m_; }
  int d() const { return d_; }
  const double* log_phi(int key) const { return log_phi_.data() + static_cast<size_t>(key) * m_; }
  const double* value(int key) const { return v_ + static_cast<size_t>(key) * d_; }
  int keys() const { return keys_; }
  const KeySums& all() const { return all_; }  // over every key

  // Adds `key` to `sums`, raising (and rescaling to) the feature's shift when the key's
  // log-feature is above it.
  void add(int key, KeySums& sums) const;
  KeySums empty_sums() const;

 private:
  int m_, d_, keys_;
  const double* v_;
  std::vector<double> log_phi_;
  KeySums all_;
};

// The shifted sums over keys 0..i, advanced key by key (for causal rows, in row order).
class KeyPrefix {
 public:
  explicit KeyPrefix(const HeadSummary& h) : h_(h), sums_(h.empty_sums()) {}
  void advance_to(int last_key);  // include keys up to `last_key` (never moves back)
  const KeySums& sums() const { return sums_; }

 private:
  const HeadSummary& h_;
  int next_ = 0;
  KeySums sums_;
};

// o_i of one row: `log_phi_q` its m log-features, `survivors` the ids of K_i with
// `scores` their exact scaled scores, `sums` the shifted key sums over the keys the query
// may see (K_i among them). Writes d values.
void combine(const HeadSummary& h, const double* log_phi_q, const std::vector<int32_t>& survivors,
             const std::vector<double>& scores, const KeySums& sums, double* out);

}  // namespace attnsim::lowrank
