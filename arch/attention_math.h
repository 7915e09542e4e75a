#pragma once
// Pure attention arithmetic shared by the softmax and AV units and the quality monitor:
// softmax over integer scores and the probability-weighted sum of value rows. All in
// double so that the "exact" reference and the accelerator's functional output use the
// same arithmetic: when every candidate survives, both are bitwise identical.
#include <cstdint>
#include <vector>

namespace attnsim::attn {

// p_j = exp(c*s_j - c*max_s) / sum_k exp(c*s_k - c*max_s), j < n. c = scale_q*scale_k/sqrt(d).
// n = 0 writes nothing. Returns max_s and the sum (of exponentials relative to max_s), from
// which another set of scores can join the same normalizer.
struct SoftmaxSum {
  int64_t max = 0;
  double sum = 0.0;  // 0 for n = 0
};
SoftmaxSum softmax(const int64_t* scores, int n, double c, double* probs);

// Same over real-valued logits (already scaled).
void softmax_real(const double* logits, int n, double* probs);

// out[t] = sum_j probs[j] * v[keys[j]*d + t], t < d. out is overwritten (zeros when n = 0).
void weighted_sum(const double* probs, const int32_t* keys, int n, const double* v, int d,
                  double* out);

// out[t] = sum_j probs[j] * v[j*d + t] over keys 0..n-1 (the same sums as weighted_sum
// with keys 0..n-1).
void weighted_sum_rows(const double* probs, int n, const double* v, int d, double* out);

// sum_t a[t]*b[t] in double, over float inputs. Eight partial sums in a fixed order: fast
// (vectorizable) and the same result on every machine.
double dot_f64(const float* a, const float* b, int d);
// out[j] = dot_f64(q, key j, d) for keys j < n of k, whose floats are given widened to
// double (exactly: no conversion per pair, for keys that every row of a head reads), bit
// for bit, several keys at a time.
void dot_f64_rows(const float* q, const double* k, int n, int d, double* out);

// Squared Euclidean norm of a - b, and of a.
double squared_distance(const double* a, const double* b, int d);
double squared_norm(const double* a, int d);

}  // namespace attnsim::attn
