#include "arch/lowrank_math.h"

#include "arch/seeded.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnsim::lowrank {

namespace {

constexpr uint64_t kFeaturePurpose = 0x706572666f726d72ULL;  // "performr"

}  // namespace

Matrix gaussian_features(int half, int d, uint64_t seed, int layer, int head) {
  return gaussian_matrix(half, d, seed, layer, head, kFeaturePurpose);
}

void log_features(const Matrix& w, const double* x, int d, double* out) {
  const int half = w.rows, m = 2 * half;
  const double scale = std::pow(static_cast<double>(d), -0.25);
  std::vector<double> xs(d);
  for (int t = 0; t < d; ++t) xs[t] = x[t] * scale;
  const double base = -dot_in_order(xs.data(), xs.data(), d) / 2 - std::log(static_cast<double>(m)) / 2;
  for (int f = 0; f < half; ++f) {
    const double p = dot_in_order(w.row(f), xs.data(), d);
    out[f] = p + base;
    out[half + f] = -p + base;
  }
}

HeadSummary::HeadSummary(const Matrix& w, const double* k, const double* v, int m_keys, int d)
    : m_(2 * w.rows), d_(d), keys_(m_keys), v_(v) {
  log_phi_.resize(static_cast<size_t>(keys_) * m_);
  for (int j = 0; j < keys_; ++j) log_features(w, k + static_cast<size_t>(j) * d, d, log_phi_.data() + static_cast<size_t>(j) * m_);
  // Over all keys, the shifts first (so no sum needs rescaling), then the sums.
  all_ = empty_sums();
  for (int j = 0; j < keys_; ++j)
    for (int f = 0; f < m_; ++f) all_.sigma[f] = std::max(all_.sigma[f], log_phi(j)[f]);
  for (int j = 0; j < keys_; ++j) add(j, all_);
}

KeySums HeadSummary::empty_sums() const {
  return {std::vector<double>(m_, -std::numeric_limits<double>::infinity()), std::vector<double>(m_, 0.0),
          std::vector<double>(static_cast<size_t>(m_) * d_, 0.0)};
}

void HeadSummary::add(int key, KeySums& s) const {
  const double* lp = log_phi(key);
  const double* v = value(key);
  for (int f = 0; f < m_; ++f) {
    double* sv = s.sum_v.data() + static_cast<size_t>(f) * d_;
    if (lp[f] > s.sigma[f]) {  // a new largest log-feature: rescale what is summed so far
      const double scale = s.sum[f] > 0 ? std::exp(s.sigma[f] - lp[f]) : 0.0;
      s.sum[f] *= scale;
      for (int t = 0; t < d_; ++t) sv[t] *= scale;
      s.sigma[f] = lp[f];
    }
    const double e = std::exp(lp[f] - s.sigma[f]);
    s.sum[f] += e;
    for (int t = 0; t < d_; ++t) sv[t] += e * v[t];
  }
}

void KeyPrefix::advance_to(int last_key) {
  for (; next_ <= last_key && next_ < h_.keys(); ++next_) h_.add(next_, sums_);
}

void combine(const HeadSummary& h, const double* log_phi_q, const std::vector<int32_t>& survivors,
             const std::vector<double>& scores, const KeySums& sums, double* out) {
  const int m = h.features(), d = h.d();
  const std::vector<double>& sum = sums.sum;
  const std::vector<double>& sum_v = sums.sum_v;
  // a_f = log(phi_i,f) + sigma_f: the log of feature f's weight on the shifted sums.
  std::vector<double> a(m);
  double c = -std::numeric_limits<double>::infinity();
  for (int f = 0; f < m; ++f) {
    a[f] = log_phi_q[f] + sums.sigma[f];
    if (sum[f] > 0) c = std::max(c, a[f] + std::log(sum[f]));
  }
  for (double s : scores) c = std::max(c, s);
  if (!std::isfinite(c)) c = 0;
  double den = 0;
  std::fill(out, out + d, 0.0);
  for (size_t x = 0; x < survivors.size(); ++x) {
    const double* lp = h.log_phi(survivors[x]);
    double low_rank = 0;
    for (int f = 0; f < m; ++f) low_rank += std::exp(log_phi_q[f] + lp[f] - c);
    const double weight = std::exp(scores[x] - c) - low_rank;  // exact minus its low-rank estimate
    den += weight;
    const double* v = h.value(survivors[x]);
    for (int t = 0; t < d; ++t) out[t] += weight * v[t];
  }
  for (int f = 0; f < m; ++f) {
    if (sum[f] == 0) continue;  // no key of the prefix carries this feature
    const double e = std::exp(a[f] - c);
    den += e * sum[f];
    const double* sv = sum_v.data() + static_cast<size_t>(f) * d;
    for (int t = 0; t < d; ++t) out[t] += e * sv[t];
  }
  if (den != 0)
    for (int t = 0; t < d; ++t) out[t] /= den;
}

}  // namespace attnsim::lowrank
