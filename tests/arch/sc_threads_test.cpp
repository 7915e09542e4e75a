// arch/sc_threads.h: how an SC_THREAD's error reaches the caller, and threads never end.
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <stdexcept>
#include <string>
#include <vector>

using namespace attnsim;

namespace {

struct UnitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thread `a` raises (or returns) at cycle `a_at`; thread `b` ticks every cycle up to 10.
struct Two : sc_core::sc_module {
  enum class A { raise, ends };
  A what;
  uint64_t a_at;
  std::vector<uint64_t> b_ticks;
  sc_core::sc_process_handle a_handle;

  Two(sc_core::sc_module_name name, A w, uint64_t at) : sc_module(name), what(w), a_at(at) {
    SC_HAS_PROCESS(Two);
    SC_THREAD(a);
    a_handle = sc_core::sc_get_current_process_handle();
    SC_THREAD(b);
  }
  void a() {
    run_thread_body([this] {
      wait_cycles(Cycles(a_at));
      if (what == A::raise) throw UnitError("unit a: bad value at cycle " + std::to_string(now_cycles().count()));
    });
  }
  void b() {
    run_thread_body([this] {
      for (int i = 0; i < 10; ++i) {
        wait_cycles(Cycles(1));
        b_ticks.push_back(now_cycles().count());
      }
    });
  }
};

}  // namespace

TEST_CASE("an SC_THREAD's exception stops the kernel and run_kernel rethrows it as it was") {
  init_kernel_time();
  Two t("t", Two::A::raise, 3);
  CHECK_THROWS_AS(run_kernel(), UnitError);
  CHECK(now_cycles().count() == 3);  // stopped in the cycle of the error
  CHECK(t.b_ticks == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("run_kernel rethrows the exception's own message, not a SystemC report") {
  init_kernel_time();
  Two t("t", Two::A::raise, 4);
  CHECK_THROWS_WITH(run_kernel(), "unit a: bad value at cycle 4");
}

TEST_CASE("a thread body that returns parks the thread: it never ends, the others run on") {
  init_kernel_time();
  Two t("t", Two::A::ends, 2);
  run_kernel();
  CHECK(now_cycles().count() == 10);
  CHECK(t.b_ticks.size() == 10);
  CHECK_FALSE(t.a_handle.terminated());
}

TEST_CASE("run_kernel(cycles) runs that many cycles and rethrows an error raised in them") {
  init_kernel_time();
  Two t("t", Two::A::raise, 6);
  run_kernel(Cycles(5));
  CHECK(now_cycles().count() == 5);
  CHECK(t.b_ticks == std::vector<uint64_t>{1, 2, 3, 4});  // what is due at cycle 5 waits for the next start
  CHECK_THROWS_WITH(run_kernel(Cycles(5)), "unit a: bad value at cycle 6");
}
