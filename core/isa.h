#pragma once
// isa: which instruction set the hot kernels run on (arch/qk_math.cpp,
// arch/attention_math.cpp).
//
// Each kernel is compiled three times from one body: for baseline x86-64 (SSE2), for AVX2
// and for AVX-512 (F, BW, VL); the best path the CPU has is picked once, at its first
// call. One portable binary thus runs fast everywhere. ATTNSIM_ISA=baseline|avx2|avx512
// forces a path (a path the CPU lacks is an error): the determinism test runs every
// available path and compares the stats.
//
// Why the paths agree bit for bit: the kernels' integer arithmetic is exact in any order,
// and their floating-point loops either accumulate each output element in a fixed order
// (vectorized across elements) or use an explicit, fixed set of partial sums;
// -ffp-contract=off (CMakeLists.txt) keeps the AVX-512 path, which has FMA, from fusing a
// multiply and an add that the others round twice.
#include <string>

namespace attnsim {

enum class Isa { baseline, avx2, avx512 };

// The path the kernels run on: ATTNSIM_ISA when set (throws std::runtime_error naming the
// variable if the value is unknown or the CPU lacks it), else the best the CPU has.
Isa active_isa();
const char* isa_name(Isa isa);
// The paths this CPU can run, baseline first.
bool isa_supported(Isa isa);

// Picks one of three builds of a kernel by active_isa().
template <class F>
F pick_isa(F baseline, F avx2, F avx512) {
  switch (active_isa()) {
    case Isa::avx512: return avx512;
    case Isa::avx2: return avx2;
    case Isa::baseline: break;
  }
  return baseline;
}

}  // namespace attnsim

// Defines name_baseline, name_avx2 and name_avx512 (static), each `ret name_X params` with
// the body given, compiled for its ISA; the body calls ATTNSIM_INLINE functions, inlined
// into each so that the vectorizer sees them with that ISA's registers.
#if defined(__x86_64__) && defined(__GNUC__)
#define ATTNSIM_INLINE inline __attribute__((always_inline))
#define ATTNSIM_ISA_BUILDS(ret, name, params, ...) \
  static ret name##_baseline params { __VA_ARGS__ } \
  __attribute__((target("avx2"))) static ret name##_avx2 params { __VA_ARGS__ } \
  __attribute__((target("avx512f,avx512bw,avx512vl"))) static ret name##_avx512 params { __VA_ARGS__ }
#else
#define ATTNSIM_INLINE inline
#define ATTNSIM_ISA_BUILDS(ret, name, params, ...) \
  static ret name##_baseline params { __VA_ARGS__ } \
  static ret name##_avx2 params { __VA_ARGS__ } \
  static ret name##_avx512 params { __VA_ARGS__ }
#endif
