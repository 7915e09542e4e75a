#include "arch/attention_math.h"

#include "core/isa.h"

#include <algorithm>
#include <cmath>

namespace attnsim::attn {

SoftmaxSum softmax(const int64_t* scores, int n, double c, double* probs) {
  if (n == 0) return {};
  const int64_t max_score = *std::max_element(scores, scores + n);
  double sum = 0.0;
  for (int j = 0; j < n; ++j) {
    // Subtract in the integer domain first: exact, and keeps exp's argument <= 0.
    probs[j] = std::exp(c * static_cast<double>(scores[j] - max_score));
    sum += probs[j];
  }
  const double inv = 1.0 / sum;
  for (int j = 0; j < n; ++j) probs[j] *= inv;
  return {max_score, sum};
}

void softmax_real(const double* logits, int n, double* probs) {
  if (n == 0) return;
  const double max_logit = *std::max_element(logits, logits + n);
  double sum = 0.0;
  for (int j = 0; j < n; ++j) {
    probs[j] = std::exp(logits[j] - max_logit);
    sum += probs[j];
  }
  const double inv = 1.0 / sum;
  for (int j = 0; j < n; ++j) probs[j] *= inv;
}

namespace {

// The hot loops, each built for every ISA (core/isa.h): results identical on every path
// (each output element accumulates in j order; dot_f64's eight partial sums are fixed).
ATTNSIM_INLINE void weighted_sum_body(const double* probs, const int32_t* keys, int n, const double* v, int d,
                                      double* out) {
  std::fill(out, out + d, 0.0);
  for (int j = 0; j < n; ++j) {
    const double p = probs[j];
    const double* row = v + static_cast<size_t>(keys[j]) * d;
    for (int t = 0; t < d; ++t) out[t] += p * row[t];
  }
}

ATTNSIM_INLINE double dot_f64_body(const float* a, const float* b, int d) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int t = 0;
  for (; t + 8 <= d; t += 8)
    for (int u = 0; u < 8; ++u) acc[u] += static_cast<double>(a[t + u]) * b[t + u];
  for (; t < d; ++t) acc[t % 8] += static_cast<double>(a[t]) * b[t];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

ATTNSIM_INLINE void axpy_f64_body(double p, const float* row, int d, double* out) {
  for (int t = 0; t < d; ++t) out[t] += p * row[t];
}

ATTNSIM_ISA_BUILDS(void, weighted_sum_on, (const double* probs, const int32_t* keys, int n, const double* v, int d,
                                           double* out),
                   weighted_sum_body(probs, keys, n, v, d, out);)
ATTNSIM_ISA_BUILDS(double, dot_f64_on, (const float* a, const float* b, int d), return dot_f64_body(a, b, d);)
ATTNSIM_ISA_BUILDS(void, axpy_f64_on, (double p, const float* row, int d, double* out), axpy_f64_body(p, row, d, out);)

}  // namespace

void weighted_sum(const double* probs, const int32_t* keys, int n, const double* v, int d, double* out) {
  static const auto kernel = pick_isa(&weighted_sum_on_baseline, &weighted_sum_on_avx2, &weighted_sum_on_avx512);
  kernel(probs, keys, n, v, d, out);
}

double dot_f64(const float* a, const float* b, int d) {
  static const auto kernel = pick_isa(&dot_f64_on_baseline, &dot_f64_on_avx2, &dot_f64_on_avx512);
  return kernel(a, b, d);
}

void axpy_f64(double p, const float* row, int d, double* out) {
  static const auto kernel = pick_isa(&axpy_f64_on_baseline, &axpy_f64_on_avx2, &axpy_f64_on_avx512);
  kernel(p, row, d, out);
}

double squared_distance(const double* a, const double* b, int d) {
  double s = 0.0;
  for (int t = 0; t < d; ++t) {
    const double e = a[t] - b[t];
    s += e * e;
  }
  return s;
}

double squared_norm(const double* a, int d) {
  double s = 0.0;
  for (int t = 0; t < d; ++t) s += a[t] * a[t];
  return s;
}

}  // namespace attnsim::attn
