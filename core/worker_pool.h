#pragma once
// WorkerPool: threads - 1 workers kept for the pool's life, and run(work) that calls
// work() on each of them and on the caller's thread at once, returning when every call
// has returned. Starting a thread costs tens of microseconds, as much as a small head's
// rows; the pool starts them once. The first exception a call throws is rethrown by run()
// once all calls have returned. One run() at a time (callers take turns).
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attnsim {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  void run(const std::function<void()>& work);

 private:
  void serve();
  void record(std::exception_ptr e);

  std::mutex lock_;
  std::condition_variable start_, done_;
  const std::function<void()>* work_ = nullptr;
  unsigned long generation_ = 0;  // one per run()
  int running_ = 0;               // workers still in this run's call
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace attnsim
