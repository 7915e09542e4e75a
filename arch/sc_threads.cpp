#include "arch/sc_threads.h"

#include "arch/kernel_time.h"

#include <systemc>

#include <exception>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define ATTNSIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTNSIM_ASAN 1
#endif
#endif

#ifdef ATTNSIM_ASAN
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

namespace attnsim {

namespace {

std::exception_ptr& first_error() {
  static std::exception_ptr error;  // one simulation per process
  return error;
}

// Debian's SystemC 2.3.4 announces each QuickThreads switch to AddressSanitizer
// (__sanitizer_start_switch_fiber with the target coroutine's stack), but gives the main
// coroutine's stack as bottom 0, size 0: once the kernel has run a thread, ASan takes the
// main stack for [0, 0). An exception thrown there then cannot have its frames unpoisoned
// ("ASan is ignoring requested __asan_handle_no_return") and the stale redzones show up
// as a false stack-buffer-overflow. Back on the main stack, tell ASan its real bounds with
// a switch from the main stack to itself.
void main_stack_back_to_asan() {
#ifdef ATTNSIM_ASAN
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* bottom = nullptr;
  size_t size = 0;
  const int got = pthread_attr_getstack(&attr, &bottom, &size);
  pthread_attr_destroy(&attr);
  if (got != 0) return;
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, bottom, size);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// The coroutine stacks are mmap'ed, so LeakSanitizer does not scan them. When a run stops
// on an error, the other threads stay suspended mid-job, holding objects that only their
// stacks point to, and LSan would report those as leaked at exit. So each thread notes its
// stack when it starts, and only on that error path do the stacks become root regions
// (scanned for pointers): a successful run's leaks inside threads are still reported.
// The exact bounds are those SystemC gave ASan when switching to the thread; a switch from
// the stack to itself reads them back.
struct Stack {
  const void* bottom;
  size_t size;
};

std::vector<Stack>& thread_stacks() {
  static std::vector<Stack> stacks;
  return stacks;
}

void note_this_stack() {
#ifdef ATTNSIM_ASAN
  void* fake = nullptr;
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_start_switch_fiber(&fake, nullptr, 0);
  __sanitizer_finish_switch_fiber(fake, &bottom, &size);
  __sanitizer_start_switch_fiber(&fake, bottom, size);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
  if (bottom != nullptr && size > 0) thread_stacks().push_back({bottom, size});
#endif
}

void scan_suspended_threads_for_leaks() {
#ifdef ATTNSIM_ASAN
  for (const Stack& s : thread_stacks()) __lsan_register_root_region(s.bottom, s.size);
#endif
  thread_stacks().clear();
}

void start_and_rethrow(const sc_core::sc_time* duration) {
  try {
    if (duration)
      sc_core::sc_start(*duration);
    else
      sc_core::sc_start();
  } catch (...) {  // the kernel's own errors
    main_stack_back_to_asan();
    scan_suspended_threads_for_leaks();
    throw;
  }
  main_stack_back_to_asan();
  if (std::exception_ptr e = first_error()) {
    first_error() = nullptr;
    scan_suspended_threads_for_leaks();
    std::rethrow_exception(e);
  }
}

}  // namespace

void run_thread_body(const std::function<void()>& body) {
  note_this_stack();
  try {
    body();
  } catch (const sc_core::sc_unwind_exception&) {
    throw;  // SystemC killing or resetting the process: it must pass
  } catch (...) {
    if (!first_error()) first_error() = std::current_exception();
    sc_core::sc_stop();
  }
  // Never notified, never destroyed: parked threads wait on it until the process exits.
  static sc_core::sc_event* const never = new sc_core::sc_event();
  while (true) sc_core::wait(*never);
}

void run_kernel() { start_and_rethrow(nullptr); }

void run_kernel(Cycles cycles) {
  const sc_core::sc_time t = to_sc_time(cycles);
  start_and_rethrow(&t);
}

}  // namespace attnsim
