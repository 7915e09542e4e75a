#include "arch/attention_math.h"

#include "core/isa.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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
// b: float, or floats already widened to double (the same products either way).
template <typename B>
ATTNSIM_INLINE double dot_f64_body(const float* a, const B* b, int d) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int t = 0;
  for (; t + 8 <= d; t += 8)
    for (int u = 0; u < 8; ++u) acc[u] += static_cast<double>(a[t + u]) * b[t + u];
  for (; t < d; ++t) acc[t % 8] += static_cast<double>(a[t]) * b[t];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Eight doubles, and eight floats, as one value: GCC's vector extensions, lowered to the
// registers of the ISA each kernel is built for (4 SSE2, 2 AVX2 or 1 AVX-512 register).
// Element-wise + and * are the scalar operations (no contraction: -ffp-contract=off).
// The helpers below are always inlined into the kernels, so passing these values in
// registers never crosses a call: GCC's note that a 64-byte vector argument's ABI depends
// on AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"  // GCC's and clang's name for it
typedef double Double8 __attribute__((vector_size(64)));
typedef float Float8 __attribute__((vector_size(32)));

ATTNSIM_INLINE Double8 load8(const double* p) {
  Double8 x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

ATTNSIM_INLINE Double8 load8(const float* p) {
  Float8 x;
  std::memcpy(&x, p, sizeof x);
  return __builtin_convertvector(x, Double8);
}

ATTNSIM_INLINE double reduce8(const Double8& a) {  // dot_f64's order of the eight partial sums
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// dot_f64 of q with keys 0..n-1 of k, four keys at a time: each key's eight partial sums
// are added in dot_f64's order, but four keys' chains run side by side instead of one
// waiting on its adder's latency.
ATTNSIM_INLINE void dot_f64_rows_body(const float* q, const double* k, int n, int d, double* out) {
  constexpr int kKeys = 4;
  const int full = d / 8 * 8;
  int j = 0;
  for (; j + kKeys <= n && full == d; j += kKeys) {
    const double* rows = k + static_cast<size_t>(j) * d;
    Double8 acc[kKeys] = {};
    for (int t = 0; t < d; t += 8) {
      const Double8 qt = load8(q + t);
      for (int r = 0; r < kKeys; ++r) acc[r] += qt * load8(rows + static_cast<size_t>(r) * d + t);
    }
    for (int r = 0; r < kKeys; ++r) out[j + r] = reduce8(acc[r]);
  }
  for (; j < n; ++j) out[j] = dot_f64_body(q, k + static_cast<size_t>(j) * d, d);
}

// out[t] = sum_j probs[j] * row(j)[t]: each element accumulated in j order from 0. The
// columns go in blocks of 64 held in eight vector accumulators (registers, not out's
// memory); blocking by column leaves every element's order of additions as it is.
template <typename Row>
ATTNSIM_INLINE void weighted_rows_body(const double* probs, int n, int d, Row row, double* out) {
  constexpr int kBlock = 64;
  int c = 0;
  for (; c + kBlock <= d; c += kBlock) {
    Double8 acc[kBlock / 8] = {};
    for (int j = 0; j < n; ++j) {
      const double p = probs[j];
      const auto* r = row(j) + c;
      for (int b = 0; b < kBlock / 8; ++b) acc[b] += p * load8(r + 8 * b);
    }
    std::memcpy(out + c, acc, sizeof acc);
  }
  if (c == d) return;
  std::fill(out + c, out + d, 0.0);
  for (int j = 0; j < n; ++j) {
    const double p = probs[j];
    const auto* r = row(j);
    for (int t = c; t < d; ++t) out[t] += p * r[t];
  }
}

ATTNSIM_INLINE void weighted_sum_body(const double* probs, const int32_t* keys, int n, const double* v, int d,
                                      double* out) {
  weighted_rows_body(probs, n, d, [=](int j) { return v + static_cast<size_t>(keys[j]) * d; }, out);
}

template <typename Value>
ATTNSIM_INLINE void weighted_sum_rows_body(const double* probs, int n, const Value* v, int d, double* out) {
  weighted_rows_body(probs, n, d, [=](int j) { return v + static_cast<size_t>(j) * d; }, out);
}

ATTNSIM_ISA_BUILDS(void, weighted_sum_on, (const double* probs, const int32_t* keys, int n, const double* v, int d,
                                           double* out),
                   weighted_sum_body(probs, keys, n, v, d, out);)
ATTNSIM_ISA_BUILDS(void, weighted_sum_rows_on, (const double* probs, int n, const double* v, int d, double* out),
                   weighted_sum_rows_body(probs, n, v, d, out);)
ATTNSIM_ISA_BUILDS(void, dot_f64_rows_on, (const float* q, const double* k, int n, int d, double* out),
                   dot_f64_rows_body(q, k, n, d, out);)

}  // namespace

void weighted_sum(const double* probs, const int32_t* keys, int n, const double* v, int d, double* out) {
  static const auto kernel = pick_isa(&weighted_sum_on_baseline, &weighted_sum_on_avx2, &weighted_sum_on_avx512);
  kernel(probs, keys, n, v, d, out);
}

void weighted_sum_rows(const double* probs, int n, const double* v, int d, double* out) {
  static const auto kernel =
      pick_isa(&weighted_sum_rows_on_baseline, &weighted_sum_rows_on_avx2, &weighted_sum_rows_on_avx512);
  kernel(probs, n, v, d, out);
}

double dot_f64(const float* a, const float* b, int d) { return dot_f64_body(a, b, d); }

void dot_f64_rows(const float* q, const double* k, int n, int d, double* out) {
  static const auto kernel =
      pick_isa(&dot_f64_rows_on_baseline, &dot_f64_rows_on_avx2, &dot_f64_rows_on_avx512);
  kernel(q, k, n, d, out);
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
