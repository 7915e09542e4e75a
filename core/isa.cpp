#include "core/isa.h"

#include <cstdlib>
#include <stdexcept>

namespace attnsim {

namespace {

Isa best_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2")) return Isa::avx2;
#endif
  return Isa::baseline;
}

Isa chosen_isa() {
  const char* forced = std::getenv("ATTNSIM_ISA");
  if (!forced || !*forced) return best_isa();
  const std::string name = forced;
  for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512}) {
    if (name != isa_name(isa)) continue;
    if (!isa_supported(isa))
      throw std::runtime_error("ATTNSIM_ISA=" + name + ": this CPU cannot run the " + name + " path");
    return isa;
  }
  throw std::runtime_error("ATTNSIM_ISA=" + name + ": unknown path (baseline, avx2, avx512)");
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::baseline: break;
  }
  return "baseline";
}

bool isa_supported(Isa isa) { return static_cast<int>(isa) <= static_cast<int>(best_isa()); }

Isa active_isa() {
  static const Isa isa = chosen_isa();
  return isa;
}

}  // namespace attnsim
