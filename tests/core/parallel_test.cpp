// parallel_for (core/parallel.h) and WorkerPool (core/worker_pool.h): every index runs once
// whatever the thread count, and an error comes back to the caller (for parallel_for, the
// lowest failing index's, so the message does not depend on the threads).
#include "core/parallel.h"
#include "core/worker_pool.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace attnsim;

TEST_CASE("parallel_for runs each index exactly once with 1, 2, 3 and 8 threads") {
  for (const int threads : {1, 2, 3, 8}) {
    std::vector<std::atomic<int>> hits(100);
    parallel_for(100, threads, [&](int i) { ++hits[i]; });
    for (int i = 0; i < 100; ++i) CHECK(hits[i].load() == 1);
  }
  int calls = 0;
  parallel_for(0, 4, [&](int) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("parallel_for rethrows the error of the lowest failing index, with any number of threads") {
  for (const int threads : {1, 2, 4}) {
    try {
      parallel_for(50, threads, [](int i) {
        if (i == 7 || i == 30 || i == 49) throw std::runtime_error("index " + std::to_string(i));
      });
      FAIL("no error");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "index 7");
    }
  }
}

TEST_CASE("a worker pool calls the work on each of its threads once per run, the caller's among them") {
  WorkerPool pool(3);
  CHECK(pool.threads() == 3);
  for (int run = 0; run < 20; ++run) {
    std::mutex m;
    std::set<std::thread::id> ids;
    int calls = 0;
    pool.run([&] {
      std::lock_guard<std::mutex> g(m);
      ids.insert(std::this_thread::get_id());
      ++calls;
    });
    CHECK(calls == 3);
    CHECK(ids.size() == 3);
    CHECK(ids.count(std::this_thread::get_id()) == 1);
  }
  WorkerPool alone(1);
  int calls = 0;
  alone.run([&] { ++calls; });
  CHECK(calls == 1);
}

TEST_CASE("a worker pool rethrows a worker's error once every call has returned, and runs again after") {
  WorkerPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> returned{0};
  CHECK_THROWS_WITH(pool.run([&] {
                      if (std::this_thread::get_id() != caller) throw std::runtime_error("worker failed");
                      ++returned;
                    }),
                    "worker failed");
  CHECK(returned.load() == 1);  // the caller's call finished before run() threw
  std::atomic<int> calls{0};
  pool.run([&] { ++calls; });
  CHECK(calls.load() == 2);
}
