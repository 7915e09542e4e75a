// The low-rank unit's pure rules (arch/lowrank_math.h): Performer features by hand, the
// estimator's mean, the Scatterbrain combination (exact with every key a survivor, pure
// Performer with none), and the causal prefix for keys of very different norms.
#include "arch/lowrank_math.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace attnsim;

namespace {

Matrix matrix(int rows, int cols, std::vector<double> values) {
  Matrix m;
  m.rows = rows, m.cols = cols, m.values = std::move(values);
  return m;
}

double dot(const double* a, const double* b, int d) {
  double s = 0;
  for (int t = 0; t < d; ++t) s += a[t] * b[t];
  return s;
}

// Exact softmax attention of q over `keys` rows, in plain double.
std::vector<double> exact_attention(const std::vector<double>& q, const std::vector<double>& k,
                                    const std::vector<double>& v, int keys, int d) {
  std::vector<double> e(keys), out(d, 0.0);
  double total = 0;
  for (int j = 0; j < keys; ++j) total += e[j] = std::exp(dot(q.data(), &k[j * d], d) / std::sqrt(double(d)));
  for (int j = 0; j < keys; ++j)
    for (int t = 0; t < d; ++t) out[t] += e[j] / total * v[j * d + t];
  return out;
}

}  // namespace

TEST_CASE("log features by hand: x' = x d^(-1/4), [w.x', -w.x'] - |x'|^2/2 - ln(m)/2") {
  // d = 1 (x' = x), W = [[1]], m = 2: x = 2 gives 2 - 2 - ln 2 / 2 and -2 - 2 - ln 2 / 2.
  const Matrix w = matrix(1, 1, {1});
  const double x[1] = {2};
  double out[2];
  lowrank::log_features(w, x, 1, out);
  CHECK(out[0] == Approx(-std::log(2.0) / 2).epsilon(1e-15));
  CHECK(out[1] == Approx(-4 - std::log(2.0) / 2).epsilon(1e-15));
  // d = 16: x' = x / 2. W = [[1, 0, ...], [0, 1, 0, ...]], x = (4, 2, 0, ...): x' = (2, 1),
  // |x'|^2/2 = 2.5, m = 4: out = [2, 1, -2, -1] - 2.5 - ln(4)/2.
  std::vector<double> rows(2 * 16, 0.0);
  rows[0] = 1, rows[16 + 1] = 1;
  double x16[16] = {4, 2};
  double out16[4];
  lowrank::log_features(matrix(2, 16, rows), x16, 16, out16);
  const double base = -2.5 - std::log(4.0) / 2;
  CHECK(out16[0] == Approx(2 + base).epsilon(1e-15));
  CHECK(out16[1] == Approx(1 + base).epsilon(1e-15));
  CHECK(out16[2] == Approx(-2 + base).epsilon(1e-15));
  CHECK(out16[3] == Approx(-1 + base).epsilon(1e-15));
}

TEST_CASE("phi(q) . phi(k) estimates exp(q . k / sqrt(d)) without bias") {
  const int d = 8, m = 64, trials = 4000;
  std::vector<double> q(d), k(d);
  for (int t = 0; t < d; ++t) q[t] = 0.3 * (t % 3) - 0.2, k[t] = 0.25 * ((t * 5) % 4) - 0.4;
  double mean = 0;
  for (int s = 0; s < trials; ++s) {
    const Matrix w = lowrank::gaussian_features(m / 2, d, s, 0, 0);
    std::vector<double> lq(m), lk(m);
    lowrank::log_features(w, q.data(), d, lq.data());
    lowrank::log_features(w, k.data(), d, lk.data());
    for (int f = 0; f < m; ++f) mean += std::exp(lq[f] + lk[f]) / trials;
  }
  CHECK(mean == Approx(std::exp(dot(q.data(), k.data(), d) / std::sqrt(double(d)))).epsilon(0.01));
}

TEST_CASE("every key a survivor gives exact attention; no survivor gives the Performer estimate") {
  const int d = 4, keys = 5, m = 16;
  std::vector<double> q = {0.5, -1, 0.25, 2}, k(keys * d), v(keys * d);
  for (int x = 0; x < keys * d; ++x) k[x] = std::sin(1.3 * x), v[x] = std::cos(0.7 * x);
  const Matrix w = lowrank::gaussian_features(m / 2, d, 3, 0, 0);
  const lowrank::HeadSummary h(w, k.data(), v.data(), keys, d);
  std::vector<double> lq(m);
  lowrank::log_features(w, q.data(), d, lq.data());

  std::vector<int32_t> all = {0, 1, 2, 3, 4};
  std::vector<double> scores(keys);
  for (int j = 0; j < keys; ++j) scores[j] = dot(q.data(), &k[j * d], d) / 2;  // sqrt(4) = 2
  std::vector<double> out(d);
  lowrank::combine(h, lq.data(), all, scores, h.all(), out.data());
  const std::vector<double> exact = exact_attention(q, k, v, keys, d);
  for (int t = 0; t < d; ++t) CHECK(out[t] == Approx(exact[t]).epsilon(1e-12));

  // No survivor: sum_j (phi_i.phi_j) v_j / sum_j phi_i.phi_j, computed here directly.
  lowrank::combine(h, lq.data(), {}, {}, h.all(), out.data());
  std::vector<double> num(d, 0.0);
  double den = 0;
  for (int j = 0; j < keys; ++j) {
    std::vector<double> lk(m);
    lowrank::log_features(w, &k[j * d], d, lk.data());
    double e = 0;
    for (int f = 0; f < m; ++f) e += std::exp(lq[f] + lk[f]);
    den += e;
    for (int t = 0; t < d; ++t) num[t] += e * v[j * d + t];
  }
  for (int t = 0; t < d; ++t) CHECK(out[t] == Approx(num[t] / den).epsilon(1e-12));
}

TEST_CASE("a causal prefix keeps its own shifts: early keys far below later ones do not vanish") {
  // Key 0 is huge, key 1 small: log phi = +-w.x' - |x'|^2/2 - ln(m)/2, so key 0's features
  // lie about 286000 below key 1's, and below anything exp can scale back from the head's
  // largest. Row 0 (prefix {0}, no survivor) must still get key 0's value, not zeros.
  const int d = 2, m = 2;
  const std::vector<double> k = {900, 0, 0.01, 0}, v = {3, -1, 7, 7};
  const Matrix w = matrix(1, d, {1, 0});
  const lowrank::HeadSummary h(w, k.data(), v.data(), 2, d);
  lowrank::KeyPrefix prefix(h);
  prefix.advance_to(0);
  const double q[2] = {0.5, 0};
  std::vector<double> lq(m), out(d);
  lowrank::log_features(w, q, d, lq.data());
  lowrank::combine(h, lq.data(), {}, {}, prefix.sums(), out.data());
  CHECK(out[0] == Approx(3).epsilon(1e-12));  // one key: its value, whatever its weight
  CHECK(out[1] == Approx(-1).epsilon(1e-12));
  // After key 1 joins, its value dominates (key 0's weight is exp(-286000) of it).
  prefix.advance_to(1);
  lowrank::combine(h, lq.data(), {}, {}, prefix.sums(), out.data());
  CHECK(out[0] == Approx(7).epsilon(1e-9));
}
