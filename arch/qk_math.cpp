#include "arch/qk_math.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/cycles.h"
#include "core/isa.h"

namespace attnsim::qk {

namespace {

// sum_t q[t] * k[t] with accumulator Acc. The products of two int16 fit in int32 (at most
// 2^30 in magnitude); the caller picks Acc wide enough for the sum. Written as a plain loop
// of widening multiply-adds so that GCC/Clang vectorize it (pmaddwd for Acc = int32_t).
template <typename Acc>
ATTNSIM_INLINE Acc dot_kernel(const int16_t* __restrict q, const int16_t* __restrict k, int d) {
  Acc acc = 0;
  for (int t = 0; t < d; ++t) acc += static_cast<Acc>(static_cast<int32_t>(q[t]) * static_cast<int32_t>(k[t]));
  return acc;
}

// sum_t q[t] * (k[t] & mask): the contribution of the bit-plane(s) selected by `mask`.
// With mask = -(2^(B-1)) (all bits from B-1 up) a sign-extended B-bit k gives -2^(B-1) or 0,
// the MSB plane's two's-complement weight; with mask = 2^j it gives 0 or +2^j.
template <typename Acc>
ATTNSIM_INLINE Acc masked_dot_kernel(const int16_t* __restrict q, const int16_t* __restrict k, int d, int16_t mask) {
  Acc acc = 0;
  for (int t = 0; t < d; ++t) {
    const int16_t bits = static_cast<int16_t>(k[t] & mask);
    acc += static_cast<Acc>(static_cast<int32_t>(q[t]) * static_cast<int32_t>(bits));
  }
  return acc;
}

ATTNSIM_ISA_BUILDS(int64_t, masked_dot, (const int16_t* q, const int16_t* k, int d, int16_t mask, bool wide),
                   return wide ? masked_dot_kernel<int64_t>(q, k, d, mask)
                               : static_cast<int64_t>(masked_dot_kernel<int32_t>(q, k, d, mask));)
ATTNSIM_ISA_BUILDS(int64_t, dot_any, (const int16_t* q, const int16_t* k, int d, bool wide),
                   return wide ? dot_kernel<int64_t>(q, k, d) : static_cast<int64_t>(dot_kernel<int32_t>(q, k, d));)

int64_t masked_dot(const int16_t* q, const int16_t* k, int d, int16_t mask, bool wide) {
  static const auto kernel = pick_isa(&masked_dot_baseline, &masked_dot_avx2, &masked_dot_avx512);
  return kernel(q, k, d, mask, wide);
}

void check_bits(int bits, const char* fn) {
  if (bits < 2 || bits > 16)
    throw std::invalid_argument(std::string("qk_math: ") + fn + ": bits must be in 2..16, got " +
                                std::to_string(bits));
}

void check_planes(int bits, int planes, const char* fn) {
  check_bits(bits, fn);
  if (planes < 1 || planes > bits)
    throw std::invalid_argument(std::string("qk_math: ") + fn + ": estimate planes must be in 1.." +
                                std::to_string(bits) + ", got " + std::to_string(planes));
}

uint64_t lane_count(int lanes, const char* fn) {
  if (lanes < 1)
    throw std::invalid_argument(std::string("qk_math: ") + fn + ": lanes must be >= 1, got " +
                                std::to_string(lanes));
  return static_cast<uint64_t>(lanes);
}

}  // namespace

// ---- exact dot products -------------------------------------------------------------------

bool needs_wide_accumulator(int bits, int d) {
  // Largest |product| is 2^(B-1) * 2^(B-1) = 2^(2B-2) (both operands may be -2^(B-1)).
  const double worst = static_cast<double>(d) * std::ldexp(1.0, 2 * bits - 2);
  return worst >= std::ldexp(1.0, 31);
}

int64_t dot(const int16_t* q, const int16_t* k, int d, bool wide) {
  static const auto kernel = pick_isa(&dot_any_baseline, &dot_any_avx2, &dot_any_avx512);
  return kernel(q, k, d, wide);
}

// ---- LATTE: MSB estimate and head-wise threshold ----------------------------------------

void msb_truncate(const int16_t* k, size_t n, int bits, int planes, int16_t* out) {
  check_planes(bits, planes, "msb_truncate");
  // (k >> s) << s with an arithmetic shift clears the s low bits: the same as k & -(2^s) on
  // two's complement, without a left shift of a negative value (undefined before C++20).
  const int shift = bits - planes;
  const int16_t mask = static_cast<int16_t>(-(1 << shift));
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(k[i] & mask);
}

int64_t latte_margin(double gamma, int d, double scale_q, double scale_k) {
  if (!(gamma > 0.0 && gamma <= 1.0))
    throw std::invalid_argument("qk_math: latte_margin: gamma must be in (0, 1], got " + std::to_string(gamma));
  if (d < 1) throw std::invalid_argument("qk_math: latte_margin: d must be >= 1, got " + std::to_string(d));
  if (!(scale_q > 0.0 && scale_k > 0.0))
    throw std::invalid_argument("qk_math: latte_margin: scales must be > 0");
  const double t = std::floor(-std::log(gamma) * std::sqrt(static_cast<double>(d)) / (scale_q * scale_k));
  // 2^63 is exactly representable; anything at or above it saturates (every key kept).
  if (!(t < 9223372036854775808.0)) return std::numeric_limits<int64_t>::max();
  return t <= 0.0 ? 0 : static_cast<int64_t>(t);
}

std::vector<Segment> latte_filter(const int64_t* estimates, int n, int entries, int64_t margin,
                                  uint8_t* keep) {
  if (entries < 1)
    throw std::invalid_argument("qk_math: latte_filter: entries must be >= 1, got " + std::to_string(entries));
  if (margin < 0)
    throw std::invalid_argument("qk_math: latte_filter: margin must be >= 0, got " + std::to_string(margin));
  std::vector<Segment> segments;
  if (n <= 0) return segments;
  segments.reserve(static_cast<size_t>((n + entries - 1) / entries));
  int64_t running_max = std::numeric_limits<int64_t>::min();
  for (int begin = 0; begin < n; begin += entries) {
    const int end = std::min(n, begin + entries);
    // Pass 1 of the segment has produced all its estimates before the comparator decides,
    // so the maximum includes this segment's keys.
    for (int j = begin; j < end; ++j) running_max = std::max(running_max, estimates[j]);
    int survivors = 0;
    for (int j = begin; j < end; ++j) {
      // Estimates are bounded by d * 2^30 in magnitude, so the difference cannot overflow.
      const uint8_t kept = (running_max - estimates[j] <= margin) ? 1 : 0;
      keep[j] = kept;
      survivors += kept;
    }
    segments.push_back({end - begin, survivors});
  }
  return segments;
}

// ---- LeOPArd: bit-level early termination -------------------------------------------------

int64_t positive_sum(const int16_t* q, int d) {
  int64_t sum = 0;
  for (int t = 0; t < d; ++t) sum += q[t] > 0 ? q[t] : 0;
  return sum;
}

EarlyTerm early_term(const int16_t* q, const int16_t* k, int d, int bits, int64_t qpos,
                     int64_t theta) {
  const bool wide = needs_wide_accumulator(bits, d);
  // Plane 1 (bit B-1) carries weight -2^(B-1): select it together with the sign-extension
  // bits above it so that k & mask is -2^(B-1) or 0.
  int64_t partial = masked_dot(q, k, d, static_cast<int16_t>(-(1 << (bits - 1))), wide);
  for (int b = 1;; ++b) {
    const int remaining = bits - b;                                   // planes still to come
    const int64_t upper = qpos * ((int64_t{1} << remaining) - 1);     // u_b
    if (partial + upper < theta) return {b, false};
    if (remaining == 0) return {bits, true};                          // partial == s >= theta
    // Plane b+1 is bit B-b-1 with weight +2^(B-b-1).
    partial += masked_dot(q, k, d, static_cast<int16_t>(1 << (remaining - 1)), wide);
  }
}

// ---- busy cycles of one row ----------------------------------------------------------------

uint64_t dense_bit_serial_cycles(uint64_t n, int lanes, int bits) {
  return ceil_div(n, lane_count(lanes, "dense_bit_serial_cycles")) * static_cast<uint64_t>(bits);
}

uint64_t bit_parallel_cycles(uint64_t n, int lanes) {
  return ceil_div(n, lane_count(lanes, "bit_parallel_cycles"));
}

uint64_t latte_cycles(const std::vector<Segment>& segs, int lanes, int bits, int planes) {
  check_planes(bits, planes, "latte_cycles");
  const uint64_t l = lane_count(lanes, "latte_cycles");
  const uint64_t pass1 = static_cast<uint64_t>(planes);
  const uint64_t pass2 = static_cast<uint64_t>(bits - planes);
  uint64_t cycles = 0;
  for (const Segment& s : segs)
    cycles += ceil_div(static_cast<uint64_t>(s.keys), l) * pass1 +
              ceil_div(static_cast<uint64_t>(s.survivors), l) * pass2;
  return cycles;
}

uint64_t early_term_lockstep_cycles(const int* planes, int n, int lanes) {
  const int l = static_cast<int>(lane_count(lanes, "early_term_lockstep_cycles"));
  uint64_t cycles = 0;
  for (int begin = 0; begin < n; begin += l) {
    const int end = std::min(n, begin + l);
    cycles += static_cast<uint64_t>(*std::max_element(planes + begin, planes + end));
  }
  return cycles;
}

uint64_t early_term_independent_cycles(const int* planes, int n, int lanes) {
  const uint64_t l = lane_count(lanes, "early_term_independent_cycles");
  if (n <= 0) return 0;
  // With at least as many lanes as keys every key starts at 0.
  if (static_cast<uint64_t>(n) <= l) return static_cast<uint64_t>(*std::max_element(planes, planes + n));
  // Min-heap of the times at which the lanes free. Which of several tied lanes takes a key
  // (the rule says the lowest index) does not change the multiset of free times, so the
  // makespan needs only the times, not the lane identities.
  thread_local std::vector<uint64_t> free_at;
  free_at.assign(l, 0);
  const auto later = std::greater<uint64_t>();
  for (int j = 0; j < n; ++j) {
    std::pop_heap(free_at.begin(), free_at.end(), later);
    free_at.back() += static_cast<uint64_t>(planes[j]);
    std::push_heap(free_at.begin(), free_at.end(), later);
  }
  return *std::max_element(free_at.begin(), free_at.end());
}

// ---- lane-planes actually processed --------------------------------------------------------

uint64_t dense_bitplane_ops(uint64_t n, int bits) { return n * static_cast<uint64_t>(bits); }

uint64_t latte_bitplane_ops(const std::vector<Segment>& segs, int bits, int planes) {
  uint64_t ops = 0;
  for (const Segment& s : segs)
    ops += static_cast<uint64_t>(s.keys) * static_cast<uint64_t>(planes) +
           static_cast<uint64_t>(s.survivors) * static_cast<uint64_t>(bits - planes);
  return ops;
}

uint64_t early_term_bitplane_ops(const int* planes, int n) {
  uint64_t ops = 0;
  for (int j = 0; j < n; ++j) ops += static_cast<uint64_t>(planes[j]);
  return ops;
}

// ---- helpers -------------------------------------------------------------------------------

bool fits_bits(const int16_t* x, size_t n, int bits) {
  const int lo = -(1 << (bits - 1));
  const int hi = (1 << (bits - 1)) - 1;
  for (size_t i = 0; i < n; ++i)
    if (x[i] < lo || x[i] > hi) return false;
  return true;
}

}  // namespace attnsim::qk
