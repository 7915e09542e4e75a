#pragma once
// parallel_for: runs body(0..count-1) on up to `threads` threads (the caller's among them),
// handing out indices in ascending order. What a body writes must depend only on its index,
// so the results do not depend on `threads`. An exception from a body is rethrown on the
// caller's thread once every thread has stopped; when several bodies throw, the one of the
// lowest index wins, so the message is the same with any number of threads.
#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

namespace attnsim {

template <typename Body>
void parallel_for(int count, int threads, const Body& body) {
  threads = std::max(1, std::min(threads, count));
  if (threads == 1) {
    for (int i = 0; i < count; ++i) body(i);
    return;
  }
  std::atomic<int> next{0};
  std::atomic<int> failed_at{count};  // lowest failing index so far
  std::vector<std::exception_ptr> errors(count);
  const auto work = [&] {
    for (int i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      if (i > failed_at.load()) continue;  // a lower index failed: its error is reported
      try {
        body(i);
      } catch (...) {
        errors[i] = std::current_exception();
        int seen = failed_at.load();
        while (i < seen && !failed_at.compare_exchange_weak(seen, i)) {
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (failed_at.load() < count) std::rethrow_exception(errors[failed_at.load()]);
}

}  // namespace attnsim
