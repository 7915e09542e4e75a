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
// kept as logarithms, the key sums with one shift per feature (its largest key log-feature),
// and each row divides out exp(c_i), c_i the largest of its survivors' scores and of the
// log of its low-rank normalizer terms; then every exponent is <= 0.
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

// One head's key side: every key's log-features, the per-feature shifts sigma_f, and the
// shifted sums S_f = sum_j exp(log phi_j,f - sigma_f), Sv_f,t = sum_j exp(...) v_j,t over
// all keys (causal rows keep their own running prefix, KeyPrefix).
class HeadSummary {
 public:
  // k and v: dequantized rows [m_keys x d].
  HeadSummary(const Matrix& w, const double* k, const double* v, int m_keys, int d);

  int features() const { return m_; }
  int d() const { return d_; }
  const double* log_phi(int key) const { return log_phi_.data() + static_cast<size_t>(key) * m_; }
  const double* value(int key) const { return v_ + static_cast<size_t>(key) * d_; }
  const std::vector<double>& sigma() const { return sigma_; }
  const std::vector<double>& sum() const { return sum_; }        // S, m values
  const std::vector<double>& sum_v() const { return sum_v_; }    // Sv, m x d

 private:
  int m_, d_, keys_;
  const double* v_;
  std::vector<double> log_phi_, sigma_, sum_, sum_v_;
  friend class KeyPrefix;
};

// The shifted sums over keys 0..i, advanced key by key (for causal rows, in row order).
class KeyPrefix {
 public:
  explicit KeyPrefix(const HeadSummary& h);
  void advance_to(int last_key);  // include keys up to `last_key` (never moves back)
  const std::vector<double>& sum() const { return sum_; }
  const std::vector<double>& sum_v() const { return sum_v_; }

 private:
  const HeadSummary& h_;
  int next_ = 0;
  std::vector<double> sum_, sum_v_;
};

// o_i of one row: `log_phi_q` its m log-features, `survivors` the ids of K_i with
// `scores` their exact scaled scores, `sum` / `sum_v` the shifted key sums over the keys
// the query may see. Writes d values.
void combine(const HeadSummary& h, const double* log_phi_q, const std::vector<int32_t>& survivors,
             const std::vector<double>& scores, const std::vector<double>& sum, const std::vector<double>& sum_v,
             double* out);

}  // namespace attnsim::lowrank
