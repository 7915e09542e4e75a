// The batched float-reference kernels (arch/attention_math.h) against plain loops: bit for
// bit, for row lengths that fill whole vectors and blocks (64), leave tails (3, 100) or
// span several blocks (128), and key counts below and beyond the four-key groups. The
// path in use is the machine's best; ctests golden_runs_<isa> cover the others.
#include "arch/attention_math.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

using namespace attnsim;

namespace {

// A fixed spread of magnitudes and signs, so that the order of additions shows in the bits.
std::vector<float> values(size_t count, uint32_t seed) {
  std::vector<float> out(count);
  uint32_t x = seed;
  for (float& v : out) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int32_t>(x >> 8) % 20001 - 10000) / 997.0f * ((x & 3) == 0 ? 1e3f : 1.0f);
  }
  return out;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_CASE("dot_f64_rows over keys widened to double gives dot_f64 of each key, bit for bit") {
  for (const int d : {3, 8, 64, 100, 128}) {
    for (const int n : {0, 1, 3, 4, 5, 13}) {
      const std::vector<float> q = values(d, 1), k = values(static_cast<size_t>(n) * d, 2);
      const std::vector<double> k_wide(k.begin(), k.end());
      std::vector<double> out(n + 1, -1.0);
      attn::dot_f64_rows(q.data(), k_wide.data(), n, d, out.data());
      for (int j = 0; j < n; ++j) CHECK(same_bits(out[j], attn::dot_f64(q.data(), k.data() + j * d, d)));
      CHECK(out[n] == -1.0);  // nothing written past the keys
    }
  }
}

TEST_CASE("weighted_sum_rows and weighted_sum accumulate each element in key order from zero, bit for bit") {
  for (const int d : {3, 8, 64, 100, 128}) {
    for (const int n : {0, 1, 5, 13}) {
      const std::vector<float> v = values(static_cast<size_t>(n) * d, 3);
      const std::vector<float> p_float = values(n, 4);
      std::vector<double> probs(p_float.begin(), p_float.end()), v_double(v.begin(), v.end());
      std::vector<double> expected(d, 0.0);
      for (int j = 0; j < n; ++j)
        for (int t = 0; t < d; ++t) expected[t] += probs[j] * static_cast<double>(v[j * d + t]);
      std::vector<double> out(d, -1.0), indexed(d, -1.0);
      attn::weighted_sum_rows(probs.data(), n, v_double.data(), d, out.data());
      // weighted_sum over keys given by index: the same keys in reverse, their probabilities too.
      std::vector<int32_t> keys(n);
      std::vector<double> reversed(n);
      for (int j = 0; j < n; ++j) keys[j] = n - 1 - j, reversed[j] = probs[n - 1 - j];
      std::vector<double> expected_reversed(d, 0.0);
      for (int j = n - 1; j >= 0; --j)
        for (int t = 0; t < d; ++t) expected_reversed[t] += probs[j] * v_double[j * d + t];
      attn::weighted_sum(reversed.data(), keys.data(), n, v_double.data(), d, indexed.data());
      for (int t = 0; t < d; ++t) {
        CHECK(same_bits(out[t], expected[t]));
        CHECK(same_bits(indexed[t], expected_reversed[t]));
      }
    }
  }
}
