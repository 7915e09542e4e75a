#pragma once
// The SystemC kernel's time counts clock cycles: one cycle is one nanosecond of kernel
// time whatever clock_ghz is (the clock enters only when cycles become seconds, through
// attnsim::Clock). This keeps every wait exact: no period rounding, no drift.
#include "core/cycles.h"

#include <systemc>

namespace attnsim {

inline sc_core::sc_time to_sc_time(Cycles c) {
  return sc_core::sc_time(static_cast<double>(c.count()), sc_core::SC_NS);
}

inline Cycles now_cycles() {
  return Cycles(sc_core::sc_time_stamp().value() / sc_core::sc_time(1, sc_core::SC_NS).value());
}

// Advance the calling SC_THREAD by exactly `c` cycles (no-op for 0).
inline void wait_cycles(Cycles c) {
  if (c.count() > 0) sc_core::wait(to_sc_time(c));
}

// Wait until absolute cycle `t` (no-op if already there).
inline void wait_until(Cycles t) {
  const Cycles now = now_cycles();
  if (t > now) wait_cycles(t - now);
}

// Must run before any sc_time is created: 1 ns resolution makes cycle counts integral.
// Also silences the kernel's "Simulation stopped by user." note: a run stops itself
// (sc_stop) only to report an error of its own, in one line.
inline void init_kernel_time() {
  sc_core::sc_set_time_resolution(1, sc_core::SC_NS);
  sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
}

}  // namespace attnsim
