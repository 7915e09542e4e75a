#include "core/worker_pool.h"

#include <algorithm>
#include <utility>

namespace attnsim {

WorkerPool::WorkerPool(int threads) {
  for (int t = 1; t < std::max(1, threads); ++t) workers_.emplace_back([this] { serve(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> g(lock_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void WorkerPool::record(std::exception_ptr e) {
  std::lock_guard<std::mutex> g(lock_);
  if (!error_) error_ = e;
}

void WorkerPool::serve() {
  unsigned long seen = 0;
  while (true) {
    const std::function<void()>* work;
    {
      std::unique_lock<std::mutex> g(lock_);
      start_.wait(g, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      work = work_;
    }
    try {
      (*work)();
    } catch (...) {
      record(std::current_exception());
    }
    std::lock_guard<std::mutex> g(lock_);
    if (--running_ == 0) done_.notify_one();
  }
}

void WorkerPool::run(const std::function<void()>& work) {
  if (workers_.empty()) {
    work();
    return;
  }
  {
    std::lock_guard<std::mutex> g(lock_);
    work_ = &work;
    running_ = static_cast<int>(workers_.size());
    error_ = nullptr;
    ++generation_;
  }
  start_.notify_all();
  try {
    work();
  } catch (...) {
    record(std::current_exception());
  }
  std::unique_lock<std::mutex> g(lock_);
  done_.wait(g, [&] { return running_ == 0; });
  work_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace attnsim
