#pragma once
// Pure arithmetic and timing rules of the QK unit (SEMANTICS §3 and §4), free of SystemC
// so that they can be unit-tested on hand-computed cases. The SystemC module calls these
// functions for its functional result and its busy cycles; docs/qk_unit.md explains them.
//
// Conventions: values are quantized integers of B bits (2 <= B <= 16) stored as int16_t,
// i.e. in [-2^(B-1), 2^(B-1) - 1]; matrices are row-major [rows x d]. Bit-planes are
// counted from the MSB: plane 1 is bit B-1 (weight -2^(B-1), two's complement), plane b
// is bit B-b (weight +2^(B-b) for b >= 2).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace attnsim::qk {

// ---- exact dot products -------------------------------------------------------------------

// True when d products of two B-bit values may overflow an int32 sum, i.e. when
// d * (2^(B-1))^2 >= 2^31. Decide once per head and pass the answer to dot().
bool needs_wide_accumulator(int bits, int d);

// Exact integer dot product sum_t q[t] * k[t]. `wide` = needs_wide_accumulator(B, d):
// false selects an int32 accumulator (vectorized as 16x16->32 multiply-adds), true an
// int64 one. Both paths give the same result whenever the narrow one cannot overflow.
int64_t dot(const int16_t* q, const int16_t* k, int d, bool wide);

// ---- LATTE: MSB estimate and head-wise threshold ----------------------------------------

// out[i] = (k[i] >> (B-P)) << (B-P) with an arithmetic shift: k keeping only its P most
// significant bit-planes (the value the first P planes of a bit-serial pass represent).
// dot(q, out) is then exactly LATTE's estimate e_ij. `out` may alias `k`.
void msb_truncate(const int16_t* k, size_t n, int bits, int planes, int16_t* out);

// LATTE margin T_h = floor(-ln(gamma) * sqrt(d) / (scale_q * scale_k)), evaluated in
// double in that order. gamma in (0, 1]; gamma = 1 gives 0. Values beyond the int64 range
// saturate at INT64_MAX (keep every key). Throws std::invalid_argument on gamma outside
// (0, 1], d < 1 or a non-positive scale.
int64_t latte_margin(double gamma, int d, double scale_q, double scale_k);

// One reuse-buffer segment of a row: its keys (pass 1) and its survivors (pass 2).
struct Segment {
  int keys;
  int survivors;
};
inline bool operator==(const Segment& a, const Segment& b) {
  return a.keys == b.keys && a.survivors == b.survivors;
}
inline bool operator!=(const Segment& a, const Segment& b) { return !(a == b); }

// LATTE filter of one row. `estimates` holds e_ij in candidate (key-index) order; keys are
// taken in segments of `entries`; after a segment's pass 1 the running maximum m covers
// all keys of the earlier segments and of this one, and a key of this segment survives iff
// m - e <= margin. Keys of earlier segments are never revisited (a kept key stays kept).
// Writes keep[0..n) as 0/1 and returns one Segment per segment (empty when n = 0).
// Throws std::invalid_argument if entries < 1 or margin < 0.
std::vector<Segment> latte_filter(const int64_t* estimates, int n, int entries, int64_t margin,
                                  uint8_t* keep);

// ---- LeOPArd: bit-level early termination -------------------------------------------------

struct EarlyTerm {
  int planes;      // bit-planes processed, 1..B
  bool survives;   // true iff all B planes were processed and s >= theta
};

// qpos = sum of the positive q[t]; u_b = qpos * (2^(B-b) - 1) bounds what planes b+1..B can add.
int64_t positive_sum(const int16_t* q, int d);

// Processes k plane by plane from the MSB with p_b = dot(q, (k >> (B-b)) << (B-b)) and stops
// after plane b as soon as p_b + u_b < theta. A key that completes all B planes survives
// iff s = p_B >= theta (u_B = 0, so "stopped at plane B" and "failed" coincide).
// O(d) work per processed plane, no allocation.
EarlyTerm early_term(const int16_t* q, const int16_t* k, int d, int bits, int64_t qpos,
                     int64_t theta);

// ---- busy cycles of one row (SEMANTICS §4), L lanes -------------------------------------

uint64_t dense_bit_serial_cycles(uint64_t n, int lanes, int bits);   // ceil(n/L) * B
uint64_t bit_parallel_cycles(uint64_t n, int lanes);                 // ceil(n/L)
// sum over segments of ceil(n_seg/L) * P + ceil(s_seg/L) * (B-P)
uint64_t latte_cycles(const std::vector<Segment>& segs, int lanes, int bits, int planes);
// Lock-step lanes on tiles of L consecutive keys: sum over tiles of the largest plane count.
uint64_t early_term_lockstep_cycles(const int* planes, int n, int lanes);
// Independent lanes: keys in order, each to the lane that frees first (lowest index on
// ties); the makespan of that schedule.
uint64_t early_term_independent_cycles(const int* planes, int n, int lanes);

// ---- lane-planes actually processed (counters.qk_unit.bitplane_ops) --------------------

uint64_t dense_bitplane_ops(uint64_t n, int bits);                                     // n * B
uint64_t latte_bitplane_ops(const std::vector<Segment>& segs, int bits, int planes);   // sum n*P + s*(B-P)
uint64_t early_term_bitplane_ops(const int* planes, int n);                            // sum of planes

// ---- helpers -------------------------------------------------------------------------------

// True iff every x[i] lies in the B-bit two's complement range [-2^(B-1), 2^(B-1) - 1],
// the precondition of the bit-plane rules above.
bool fits_bits(const int16_t* x, size_t n, int bits);

}  // namespace attnsim::qk
