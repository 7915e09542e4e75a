// Hand-computed checks of the QK unit's arithmetic and timing rules (SEMANTICS §3, §4),
// plus a randomized comparison against a slow bit-plane-by-bit-plane reimplementation.
#include "arch/qk_math.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

using namespace attnsim::qk;

namespace {

std::vector<uint8_t> filter(const std::vector<int64_t>& e, int entries, int64_t margin,
                            std::vector<Segment>* segs_out = nullptr) {
  std::vector<uint8_t> keep(e.size(), 7);  // 7: "not written", must disappear
  auto segs = latte_filter(e.data(), static_cast<int>(e.size()), entries, margin, keep.data());
  if (segs_out) *segs_out = segs;
  return keep;
}

}  // namespace

namespace attnsim::qk {
// For Catch's failure messages.
std::ostream& operator<<(std::ostream& os, const Segment& s) {
  return os << "{keys " << s.keys << ", survivors " << s.survivors << "}";
}
}  // namespace attnsim::qk

// ---- dot and msb_truncate -------------------------------------------------------------------

TEST_CASE("msb_truncate keeps the P most significant planes of negative and positive values") {
  // B = 8, P = 4: clear the 4 low bits (arithmetic shift right 4, then left 4).
  //   -1   = 0b11111111 -> 0b11110000 = -16
  //   -128 = 0b10000000 -> 0b10000000 = -128
  //    127 = 0b01111111 -> 0b01110000 = 112
  //   -37  = 0b11011011 -> 0b11010000 = -48
  const std::vector<int16_t> k = {-1, -128, 127, -37};
  std::vector<int16_t> out(4);
  msb_truncate(k.data(), k.size(), 8, 4, out.data());
  CHECK(out == std::vector<int16_t>{-16, -128, 112, -48});

  // P = 1: only the sign plane (weight -128) remains: -128 for negatives, 0 otherwise.
  msb_truncate(k.data(), k.size(), 8, 1, out.data());
  CHECK(out == std::vector<int16_t>{-128, -128, 0, -128});

  // P = B: nothing cleared.
  msb_truncate(k.data(), k.size(), 8, 8, out.data());
  CHECK(out == k);

  // B = 4, P = 2 (2 low bits cleared): -7 = 0b1001 -> 0b1000 = -8; 5 = 0b0101 -> 0b0100 = 4;
  // -1 = 0b1111 -> 0b1100 = -4; 3 = 0b0011 -> 0.
  const std::vector<int16_t> k4 = {-7, 5, -1, 3};
  msb_truncate(k4.data(), k4.size(), 4, 2, out.data());
  CHECK(out == std::vector<int16_t>{-8, 4, -4, 0});

  // B = 16, P = 1: -32768 stays, -1 -> -32768, 32767 -> 0.
  const std::vector<int16_t> k16 = {-32768, -1, 32767, 0};
  msb_truncate(k16.data(), k16.size(), 16, 1, out.data());
  CHECK(out == std::vector<int16_t>{-32768, -32768, 0, 0});

  // In place is allowed.
  std::vector<int16_t> inplace = k;
  msb_truncate(inplace.data(), inplace.size(), 8, 4, inplace.data());
  CHECK(inplace == std::vector<int16_t>{-16, -128, 112, -48});

  CHECK_THROWS_AS(msb_truncate(k.data(), k.size(), 8, 0, out.data()), std::invalid_argument);
  CHECK_THROWS_AS(msb_truncate(k.data(), k.size(), 8, 9, out.data()), std::invalid_argument);
}

TEST_CASE("dot: exact score and MSB estimate, both accumulator paths") {
  const std::vector<int16_t> q = {3, -2, 1, -5};
  const std::vector<int16_t> k = {-1, -128, 127, -37};
  // s = 3*(-1) + (-2)*(-128) + 1*127 + (-5)*(-37) = -3 + 256 + 127 + 185 = 565
  CHECK(dot(q.data(), k.data(), 4, false) == 565);
  CHECK(dot(q.data(), k.data(), 4, true) == 565);
  // e (P = 4, k -> {-16, -128, 112, -48}) = -48 + 256 + 112 + 240 = 560
  std::vector<int16_t> kt(4);
  msb_truncate(k.data(), 4, 8, 4, kt.data());
  CHECK(dot(q.data(), kt.data(), 4, false) == 560);
  CHECK(dot(q.data(), kt.data(), 4, true) == 560);
  CHECK(dot(q.data(), k.data(), 0, false) == 0);

  // B = 16 needs the wide path: (-32768)^2 + (-32768)^2 + 32767^2 + 1*(-1)
  //   = 2^30 + 2^30 + 1073676289 - 1 = 3221159936 > 2^31 - 1.
  const std::vector<int16_t> q16 = {-32768, -32768, 32767, 1};
  const std::vector<int16_t> k16 = {-32768, -32768, 32767, -1};
  CHECK(needs_wide_accumulator(16, 4));
  CHECK(dot(q16.data(), k16.data(), 4, true) == 3221159936LL);
}

TEST_CASE("needs_wide_accumulator switches at d * 2^(2B-2) >= 2^31") {
  // B = 8: 2^14 per product, so d = 2^17 = 131072 is the first d that may reach 2^31.
  CHECK_FALSE(needs_wide_accumulator(8, 64));
  CHECK_FALSE(needs_wide_accumulator(8, 131071));
  CHECK(needs_wide_accumulator(8, 131072));
  // B = 12: 2^22 per product -> d >= 2^9 = 512.
  CHECK_FALSE(needs_wide_accumulator(12, 511));
  CHECK(needs_wide_accumulator(12, 512));
  // B = 16: 2^30 per product -> d >= 2.
  CHECK_FALSE(needs_wide_accumulator(16, 1));
  CHECK(needs_wide_accumulator(16, 2));
  // Worst case of the narrow path just below the limit: d = 131071 products of
  // (-128)*(-128) = 16384 sum to 2147467264 < 2^31, and both paths agree.
  const std::vector<int16_t> v(131071, -128);
  CHECK(dot(v.data(), v.data(), 131071, false) == 2147467264LL);
  CHECK(dot(v.data(), v.data(), 131071, true) == 2147467264LL);
}

// ---- LATTE margin and filter ------------------------------------------------------------------

TEST_CASE("latte_margin = floor(-ln(gamma) * sqrt(d) / (scale_q * scale_k))") {
  // gamma = 1: -ln 1 = 0 -> 0 (only the maxima survive).
  CHECK(latte_margin(1.0, 64, 0.01, 0.02) == 0);
  // gamma = 0.01, d = 4, scales 1: 4.60517... * 2 = 9.21034... -> 9
  CHECK(latte_margin(0.01, 4, 1.0, 1.0) == 9);
  // gamma = 0.5, d = 64, scales 0.02 and 0.05: 0.693147... * 8 / 0.001 = 5545.177... -> 5545
  CHECK(latte_margin(0.5, 64, 0.02, 0.05) == 5545);
  // gamma = 0.9, d = 1, scales 1: 0.10536... -> 0
  CHECK(latte_margin(0.9, 1, 1.0, 1.0) == 0);
  // gamma = 0.1, d = 16, scales 0.5 and 0.25: 2.302585... * 4 / 0.125 = 73.6827... -> 73
  CHECK(latte_margin(0.1, 16, 0.5, 0.25) == 73);
  // Beyond int64: saturates (keep everything).
  CHECK(latte_margin(1e-300, 1, 1e-100, 1e-100) == std::numeric_limits<int64_t>::max());
  CHECK_THROWS_AS(latte_margin(0.0, 4, 1.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(latte_margin(1.5, 4, 1.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(latte_margin(0.5, 4, 0.0, 1.0), std::invalid_argument);
}

TEST_CASE("latte_filter: one segment") {
  // m = 10; m - e = {0, 3, 7, 0, 1}; margin 2 keeps keys 0, 3, 4.
  std::vector<Segment> segs;
  CHECK(filter({10, 7, 3, 10, 9}, 8, 2, &segs) == std::vector<uint8_t>{1, 0, 0, 1, 1});
  REQUIRE(segs.size() == 1);
  CHECK(segs[0] == Segment{5, 3});
  // entries == n is still one segment.
  CHECK(filter({10, 7, 3, 10, 9}, 5, 2, &segs) == std::vector<uint8_t>{1, 0, 0, 1, 1});
  CHECK(segs.size() == 1);
}

TEST_CASE("latte_filter: segments with a growing running maximum never drop a kept key") {
  // e = {5, 3 | 8, 6 | 12, 4 | 11}, entries 2, margin 2
  //   seg 0: m = 5,  m - e = {0, 2} -> keep 1 1   (2 survivors)
  //   seg 1: m = 8,  m - e = {0, 2} -> keep 1 1   (key 1 would now be 5 below m: stays kept)
  //   seg 2: m = 12, m - e = {0, 8} -> keep 1 0
  //   seg 3: m = 12, m - e = {1}    -> keep 1
  const std::vector<int64_t> e = {5, 3, 8, 6, 12, 4, 11};
  std::vector<Segment> segs;
  CHECK(filter(e, 2, 2, &segs) == std::vector<uint8_t>{1, 1, 1, 1, 1, 0, 1});
  REQUIRE(segs.size() == 4);
  CHECK(segs[0] == Segment{2, 2});
  CHECK(segs[1] == Segment{2, 2});
  CHECK(segs[2] == Segment{2, 1});
  CHECK(segs[3] == Segment{1, 1});
  // The same row in one segment: m = 12, m - e = {7, 9, 4, 6, 0, 8, 1} -> keys 4 and 6 only.
  CHECK(filter(e, 7, 2, &segs) == std::vector<uint8_t>{0, 0, 0, 0, 1, 0, 1});
  REQUIRE(segs.size() == 1);
  CHECK(segs[0] == Segment{7, 2});
}

TEST_CASE("latte_filter: entries = 1 compares each key with the prefix maximum") {
  // e = {4, 9, 2, 9, 8}, margin 1; prefix maxima 4, 9, 9, 9, 9; m - e = {0, 0, 7, 0, 1}.
  std::vector<Segment> segs;
  CHECK(filter({4, 9, 2, 9, 8}, 1, 1, &segs) == std::vector<uint8_t>{1, 1, 0, 1, 1});
  REQUIRE(segs.size() == 5);
  CHECK(segs[2] == Segment{1, 0});
  CHECK(segs[4] == Segment{1, 1});
}

TEST_CASE("latte_filter: margin 0 keeps exactly the maxima, ties included") {
  std::vector<Segment> segs;
  CHECK(filter({-3, 5, 5, -7, 2}, 10, 0, &segs) == std::vector<uint8_t>{0, 1, 1, 0, 0});
  CHECK(segs[0] == Segment{5, 2});
  CHECK(filter({-10, -4, -4}, 10, 0) == std::vector<uint8_t>{0, 1, 1});
  // n = 0: no segment.
  CHECK(latte_filter(nullptr, 0, 4, 0, nullptr).empty());
  std::vector<uint8_t> keep(1);
  int64_t one = 1;
  CHECK_THROWS_AS(latte_filter(&one, 1, 0, 0, keep.data()), std::invalid_argument);
}

// ---- LeOPArd early termination ---------------------------------------------------------------

TEST_CASE("early_term: plane counts from hand-derived p_b and u_b (B = 4)") {
  // B = 4, plane weights bit3 = -8, bit2 = 4, bit1 = 2, bit0 = 1.
  // q = {3, -2, 1, 0}: qpos = 3 + 1 = 4; u_b = 4 * (2^(4-b) - 1): u1 = 28, u2 = 12, u3 = 4, u4 = 0.
  const std::vector<int16_t> q = {3, -2, 1, 0};
  const int64_t qpos = positive_sum(q.data(), 4);
  REQUIRE(qpos == 4);

  // Key A = {-8, 7, -8, 5}:
  //   p1: k & -8 = {-8, 0, -8, 0}  -> -24 + 0 - 8 + 0  = -32; p1 + u1 = -4
  //   p2: k & -4 = {-8, 4, -8, 4}  -> -24 - 8 - 8 + 0  = -40; p2 + u2 = -28
  //   p3: k & -2 = {-8, 6, -8, 4}  -> -24 - 12 - 8     = -44; p3 + u3 = -40
  //   p4 = s                        = -24 - 14 - 8      = -46
  const std::vector<int16_t> a = {-8, 7, -8, 5};
  REQUIRE(dot(q.data(), a.data(), 4, false) == -46);
  EarlyTerm r = early_term(q.data(), a.data(), 4, 4, qpos, 0);  // -4 < 0: stops after plane 1
  CHECK(r.planes == 1);
  CHECK_FALSE(r.survives);
  r = early_term(q.data(), a.data(), 4, 4, qpos, -45);  // -4, -28, -40 >= -45; s = -46 < -45
  CHECK(r.planes == 4);
  CHECK_FALSE(r.survives);
  r = early_term(q.data(), a.data(), 4, 4, qpos, -46);  // s = -46 >= -46: survives
  CHECK(r.planes == 4);
  CHECK(r.survives);

  // Key B = {2, 3, 1, -1} (0010, 0011, 0001, 1111):
  //   p1: k & -8 = {0, 0, 0, -8} -> 0 (q4 = 0);  p1 + u1 = 28
  //   p2: k & -4 = {0, 0, 0, -4} -> 0;           p2 + u2 = 12
  //   p3: k & -2 = {2, 2, 0, -2} -> 6 - 4 = 2;   p3 + u3 = 6
  //   p4 = s = 6 - 6 + 1 = 1
  const std::vector<int16_t> b = {2, 3, 1, -1};
  REQUIRE(dot(q.data(), b.data(), 4, false) == 1);
  r = early_term(q.data(), b.data(), 4, 4, qpos, 29);  // 28 < 29
  CHECK(r.planes == 1);
  CHECK_FALSE(r.survives);
  r = early_term(q.data(), b.data(), 4, 4, qpos, 13);  // 28 >= 13, 12 < 13
  CHECK(r.planes == 2);
  r = early_term(q.data(), b.data(), 4, 4, qpos, 7);   // 28, 12 >= 7, 6 < 7
  CHECK(r.planes == 3);
  CHECK_FALSE(r.survives);
  r = early_term(q.data(), b.data(), 4, 4, qpos, 2);   // 28, 12, 6 >= 2, s = 1 < 2
  CHECK(r.planes == 4);
  CHECK_FALSE(r.survives);
  r = early_term(q.data(), b.data(), 4, 4, qpos, 1);   // s = 1 >= 1 (tie survives)
  CHECK(r.planes == 4);
  CHECK(r.survives);

  // theta very negative: every key runs all B planes and survives.
  for (const auto* k : {&a, &b}) {
    r = early_term(q.data(), k->data(), 4, 4, qpos, -1000000);
    CHECK(r.planes == 4);
    CHECK(r.survives);
  }
}

TEST_CASE("early_term: B = 8 key stopping after plane 5") {
  // q = {3, -2, 1, -5}, qpos = 4, u_b = 4 * (2^(8-b) - 1); k = {-1, -128, 127, -37}.
  //   b  k & mask                  p_b                          u_b   p_b + u_b
  //   1  {-128, -128,   0, -128}   -384 + 256 + 0 + 640 = 512   508   1020
  //   2  { -64, -128,  64,  -64}   -192 + 256 + 64 + 320 = 448  252    700
  //   3  { -32, -128,  96,  -64}    -96 + 256 + 96 + 320 = 576  124    700
  //   4  { -16, -128, 112,  -48}    -48 + 256 + 112 + 240 = 560  60    620
  //   5  {  -8, -128, 120,  -40}    -24 + 256 + 120 + 200 = 552  28    580
  // theta = 600: 580 < 600 -> stops after plane 5 (s = 565 would fail anyway).
  const std::vector<int16_t> q = {3, -2, 1, -5};
  const std::vector<int16_t> k = {-1, -128, 127, -37};
  const int64_t qpos = positive_sum(q.data(), 4);
  REQUIRE(qpos == 4);
  EarlyTerm r = early_term(q.data(), k.data(), 4, 8, qpos, 600);
  CHECK(r.planes == 5);
  CHECK_FALSE(r.survives);
  r = early_term(q.data(), k.data(), 4, 8, qpos, 621);  // 620 < 621 -> after plane 4
  CHECK(r.planes == 4);
  r = early_term(q.data(), k.data(), 4, 8, qpos, 565);  // s = 565 >= 565
  CHECK(r.planes == 8);
  CHECK(r.survives);
}

// ---- cycles and bitplane_ops -------------------------------------------------------------------

TEST_CASE("dense and bit-parallel cycles") {
  CHECK(dense_bit_serial_cycles(130, 64, 8) == 24);  // ceil(130/64) = 3 tiles * 8 planes
  CHECK(dense_bit_serial_cycles(128, 64, 8) == 16);  // 2 * 8
  CHECK(dense_bit_serial_cycles(5, 64, 4) == 4);     // L > n: one tile
  CHECK(dense_bit_serial_cycles(0, 64, 8) == 0);
  CHECK(bit_parallel_cycles(130, 64) == 3);
  CHECK(bit_parallel_cycles(5, 64) == 1);
  CHECK(bit_parallel_cycles(0, 64) == 0);
  CHECK(dense_bitplane_ops(130, 8) == 1040);
  CHECK(dense_bitplane_ops(0, 8) == 0);
  CHECK_THROWS_AS(bit_parallel_cycles(4, 0), std::invalid_argument);
}

TEST_CASE("latte cycles and bitplane_ops over segments") {
  // L = 64, B = 8, P = 4:
  //   {100 keys, 10 surv}: ceil(100/64)*4 + ceil(10/64)*4 = 8 + 4 = 12
  //   {100 keys,  0 surv}: 8 + 0 = 8
  //   { 37 keys, 37 surv}: 4 + 4 = 8                         total 28
  const std::vector<Segment> segs = {{100, 10}, {100, 0}, {37, 37}};
  CHECK(latte_cycles(segs, 64, 8, 4) == 28);
  // P = B: pass 2 is empty; 2*8 + 2*8 + 1*8 = 40.
  CHECK(latte_cycles(segs, 64, 8, 8) == 40);
  // L = 1: every key and survivor separately: 237*4 + 47*4 = 1136 (= the lane-planes).
  CHECK(latte_cycles(segs, 1, 8, 4) == 1136);
  // ops: 100*4 + 10*4 + 100*4 + 0 + 37*4 + 37*4 = 400 + 40 + 400 + 148 + 148 = 1136
  CHECK(latte_bitplane_ops(segs, 8, 4) == 1136);
  CHECK(latte_cycles({}, 64, 8, 4) == 0);
  CHECK(latte_bitplane_ops({}, 8, 4) == 0);
}

TEST_CASE("early_term cycles: lockstep versus independent lanes") {
  const std::vector<int> planes = {8, 1, 1, 8, 1, 1};
  // L = 2 lockstep tiles (8,1), (1,8), (1,1): 8 + 8 + 1 = 17.
  CHECK(early_term_lockstep_cycles(planes.data(), 6, 2) == 17);
  // L = 2 independent (lane free times in brackets):
  //   key0 (8) -> lane0 [8, 0]; key1 (1) -> lane1 [8, 1]; key2 (1) -> lane1 [8, 2];
  //   key3 (8) -> lane1 [8, 10]; key4 (1) -> lane0 [9, 10]; key5 (1) -> lane0 [10, 10]
  //   makespan 10.
  CHECK(early_term_independent_cycles(planes.data(), 6, 2) == 10);
  CHECK(early_term_bitplane_ops(planes.data(), 6) == 20);
  // L > n: one tile, everything starts at 0: the largest plane count.
  CHECK(early_term_lockstep_cycles(planes.data(), 6, 8) == 8);
  CHECK(early_term_independent_cycles(planes.data(), 6, 8) == 8);
  // L = 1: sequential, both are the sum.
  CHECK(early_term_lockstep_cycles(planes.data(), 6, 1) == 20);
  CHECK(early_term_independent_cycles(planes.data(), 6, 1) == 20);
  // n = 0
  CHECK(early_term_lockstep_cycles(planes.data(), 0, 2) == 0);
  CHECK(early_term_independent_cycles(planes.data(), 0, 2) == 0);
  CHECK(early_term_bitplane_ops(planes.data(), 0) == 0);

  // L = 3 with ties: planes {2, 2, 2, 1, 5, 1, 1}
  //   keys 0..2 -> lanes 0..2 [2, 2, 2]; key3 (1) -> lane0 [3, 2, 2]; key4 (5) -> lane1 [3, 7, 2];
  //   key5 (1) -> lane2 [3, 7, 3]; key6 (1) -> lane0 (tie with lane2) [4, 7, 3]: makespan 7.
  //   lockstep: (2,2,2), (1,5,1), (1) -> 2 + 5 + 1 = 8.
  const std::vector<int> p3 = {2, 2, 2, 1, 5, 1, 1};
  CHECK(early_term_independent_cycles(p3.data(), 7, 3) == 7);
  CHECK(early_term_lockstep_cycles(p3.data(), 7, 3) == 8);
}

// ---- randomized comparison against a slow reference -------------------------------------------

namespace {

// Bit j of the B-bit two's complement pattern of x.
int bit_of(int x, int j, int bits) {
  const unsigned pattern = static_cast<unsigned>(x) & ((1u << bits) - 1u);
  return static_cast<int>((pattern >> j) & 1u);
}

// Partial sums p_1..p_B, one plane at a time: plane b is bit B-b with weight -2^(B-1) for
// b = 1 and +2^(B-b) otherwise.
std::vector<int64_t> slow_partials(const std::vector<int16_t>& q, const int16_t* k, int d, int bits) {
  std::vector<int64_t> p;
  int64_t acc = 0;
  for (int b = 1; b <= bits; ++b) {
    const int j = bits - b;
    const int64_t weight = (j == bits - 1) ? -(int64_t{1} << j) : (int64_t{1} << j);
    int64_t plane = 0;
    for (int t = 0; t < d; ++t) plane += int64_t{q[t]} * bit_of(k[t], j, bits);
    acc += weight * plane;
    p.push_back(acc);
  }
  return p;
}

EarlyTerm slow_early_term(const std::vector<int16_t>& q, const int16_t* k, int d, int bits, int64_t theta) {
  const std::vector<int64_t> p = slow_partials(q, k, d, bits);
  for (int b = 1; b <= bits; ++b) {
    int64_t u = 0;
    for (int t = 0; t < d; ++t)
      if (q[t] > 0) u += int64_t{q[t]} * ((int64_t{1} << (bits - b)) - 1);
    if (p[b - 1] + u < theta) return {b, false};
  }
  return {bits, true};
}

uint64_t slow_independent(const std::vector<int>& planes, int lanes) {
  std::vector<uint64_t> free_at(lanes, 0);
  for (int p : planes) {
    int best = 0;
    for (int l = 1; l < lanes; ++l)
      if (free_at[l] < free_at[best]) best = l;
    free_at[best] += p;
  }
  return planes.empty() ? 0 : *std::max_element(free_at.begin(), free_at.end());
}

}  // namespace

TEST_CASE("randomized: estimate and early_term match a bit-plane-by-bit-plane reference") {
  std::mt19937_64 rng(20240517);
  for (int bits : {2, 4, 8, 12, 16}) {
    const int lo = -(1 << (bits - 1));
    const int hi = (1 << (bits - 1)) - 1;
    std::uniform_int_distribution<int> value(lo, hi);
    std::set<int> plane_counts_seen;
    int survivors = 0;
    for (int d : {1, 4, 16, 67}) {
      const bool wide = needs_wide_accumulator(bits, d);
      const int keys = 40;
      std::vector<int16_t> q(d), k(static_cast<size_t>(keys) * d), kt(k.size());
      for (int trial = 0; trial < 10; ++trial) {
        for (auto& x : q) x = static_cast<int16_t>(value(rng));
        for (auto& x : k) x = static_cast<int16_t>(value(rng));
        REQUIRE(fits_bits(k.data(), k.size(), bits));
        const int64_t qpos = positive_sum(q.data(), d);
        for (int j = 0; j < keys; ++j) {
          const int16_t* kj = k.data() + static_cast<size_t>(j) * d;
          const std::vector<int64_t> p = slow_partials(q, kj, d, bits);
          // The full pass is the exact score; both accumulators when the narrow one is safe.
          REQUIRE(dot(q.data(), kj, d, true) == p[bits - 1]);
          if (!wide) REQUIRE(dot(q.data(), kj, d, false) == p[bits - 1]);
          // The estimate after P planes is p_P.
          for (int planes = 1; planes <= bits; ++planes) {
            msb_truncate(kj, d, bits, planes, kt.data());
            REQUIRE(dot(q.data(), kt.data(), d, wide) == p[planes - 1]);
          }
          // Thresholds around this key's partial sums, so that every plane count can occur.
          std::uniform_int_distribution<int> pick(0, bits - 1);
          std::uniform_int_distribution<int64_t> jitter(-3, 3);
          for (int rep = 0; rep < 4; ++rep) {
            const int64_t theta = p[pick(rng)] + jitter(rng);
            const EarlyTerm want = slow_early_term(q, kj, d, bits, theta);
            const EarlyTerm got = early_term(q.data(), kj, d, bits, qpos, theta);
            REQUIRE(got.planes == want.planes);
            REQUIRE(got.survives == want.survives);
            plane_counts_seen.insert(got.planes);
            survivors += got.survives;
          }
        }
      }
    }
    INFO("bits = " << bits);
    // The comparison is not vacuous: several stopping planes and some survivors occurred.
    CHECK(plane_counts_seen.size() >= static_cast<size_t>(std::min(bits, 3)));
    CHECK(survivors > 0);
  }
}

TEST_CASE("randomized: segmenting only keeps more, and the greedy makespan matches a lane-by-lane reference") {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> est(-500, 500);
  for (int rep = 0; rep < 200; ++rep) {
    const int n = static_cast<int>(rng() % 60);
    std::vector<int64_t> e(n);
    for (auto& x : e) x = est(rng);
    const int64_t margin = static_cast<int64_t>(rng() % 200);
    const int entries = 1 + static_cast<int>(rng() % 20);
    std::vector<Segment> segs;
    const auto seg_keep = filter(e, entries, margin, &segs);
    const auto one_keep = filter(e, std::max(n, 1), margin);
    int kept = 0, keys = 0, surv = 0;
    for (int j = 0; j < n; ++j) {
      REQUIRE(seg_keep[j] >= one_keep[j]);  // a key kept with the full row maximum is kept anyway
      kept += seg_keep[j];
    }
    for (const Segment& s : segs) {
      keys += s.keys;
      surv += s.survivors;
    }
    CHECK(keys == n);
    CHECK(surv == kept);

    std::vector<int> planes(n);
    for (auto& p : planes) p = 1 + static_cast<int>(rng() % 16);
    const int lanes = 1 + static_cast<int>(rng() % 8);
    CHECK(early_term_independent_cycles(planes.data(), n, lanes) == slow_independent(planes, lanes));
    // Lockstep by an explicit tile loop.
    uint64_t lockstep = 0;
    for (int t = 0; t < n; t += lanes) lockstep += *std::max_element(planes.begin() + t, planes.begin() + std::min(n, t + lanes));
    CHECK(early_term_lockstep_cycles(planes.data(), n, lanes) == lockstep);
  }
}

TEST_CASE("the worked example of docs/qk_unit.md") {
  // B = 8, P = 4, L = 2, q = {3, -2, 1, -5}, six keys; numbers derived in docs/qk_unit.md.
  const int B = 8, P = 4, L = 2, d = 4;
  const std::vector<int16_t> q = {3, -2, 1, -5};
  const std::vector<int16_t> k = {-1,   -128, 127, -37,  //
                                  20,   -3,   40,  -30,  //
                                  -60,  10,   90,  5,    //
                                  7,    7,    7,   7,    //
                                  -100, -50,  60,  -90,  //
                                  33,   -90,  -12, -70};
  std::vector<int16_t> kt(k.size());
  msb_truncate(k.data(), k.size(), B, P, kt.data());
  std::vector<int64_t> e(6), s(6);
  for (int j = 0; j < 6; ++j) {
    e[j] = dot(q.data(), kt.data() + j * d, d, false);
    s[j] = dot(q.data(), k.data() + j * d, d, false);
  }
  CHECK(e == std::vector<int64_t>{560, 272, -112, 0, 320, 672});
  CHECK(s == std::vector<int64_t>{565, 256, -135, -21, 310, 617});

  // LATTE, margin 300, entries 4: segments {4 keys, 2 survivors}, {2 keys, 1 survivor}.
  std::vector<Segment> segs;
  CHECK(filter(e, 4, 300, &segs) == std::vector<uint8_t>{1, 1, 0, 0, 0, 1});
  REQUIRE(segs.size() == 2);
  CHECK(segs[0] == Segment{4, 2});
  CHECK(segs[1] == Segment{2, 1});
  CHECK(latte_cycles(segs, L, B, P) == 20);     // (2*4 + 1*4) + (1*4 + 1*4)
  CHECK(latte_bitplane_ops(segs, B, P) == 36);  // 4*4 + 2*4 + 2*4 + 1*4
  CHECK(dense_bit_serial_cycles(6, L, B) == 24);
  CHECK(dense_bitplane_ops(6, B) == 48);
  CHECK(bit_parallel_cycles(6, L) == 3);
  // One segment (entries >= 6): m = 672 from the start, only keys 0 and 5 survive.
  CHECK(filter(e, 4096, 300) == std::vector<uint8_t>{1, 0, 0, 0, 0, 1});

  // LeOPArd, theta = 300.
  const int64_t qpos = positive_sum(q.data(), d);
  std::vector<int> planes(6);
  std::vector<int> survives(6);
  for (int j = 0; j < 6; ++j) {
    const EarlyTerm r = early_term(q.data(), k.data() + j * d, d, B, qpos, 300);
    planes[j] = r.planes;
    survives[j] = r.survives;
  }
  CHECK(planes == std::vector<int>{8, 5, 1, 2, 8, 8});
  CHECK(survives == std::vector<int>{1, 0, 0, 0, 1, 1});
  CHECK(early_term_lockstep_cycles(planes.data(), 6, L) == 18);
  CHECK(early_term_independent_cycles(planes.data(), 6, L) == 16);
  CHECK(early_term_bitplane_ops(planes.data(), 6) == 32);
}
