#pragma once
// How the design's SC_THREADs raise errors and end, and how the kernel is run
// (docs/reliability.md#sanitizers has the why in full).
//
// An SC_THREAD runs on a QuickThreads coroutine stack of its own. An exception must not
// leave it: SystemC would turn it into a multi-line report instead of the error's own
// one-line message, and end the thread. A thread must not end at all: SystemC 2.3.4 leaves
// an ending coroutine without telling AddressSanitizer that it switched stacks, and ASan
// then reports phantom stack overflows. So every thread body runs through
// run_thread_body(), which catches the exception on the thread's own stack, stops the
// simulation and parks the thread; run_kernel() rethrows the exception on the main stack
// once sc_start returns. Run the kernel only through run_kernel().
#include "core/cycles.h"

#include <functional>

namespace attnsim {

// Runs the body of an SC_THREAD. An exception it raises is caught here and kept (the
// first one of the run) for run_kernel() to rethrow, and the simulation stops (sc_stop).
// Whether the body raised or returned, this never returns: the thread waits on an event
// that is never notified, so it never ends.
[[noreturn]] void run_thread_body(const std::function<void()>& body);

// sc_start() (until no event is left), or sc_start for `cycles` more cycles; then rethrows
// the first exception an SC_THREAD raised. Under AddressSanitizer it first tells ASan the
// main stack's bounds again (SystemC 2.3.4 announces the main coroutine's stack as empty).
void run_kernel();
void run_kernel(Cycles cycles);

}  // namespace attnsim
