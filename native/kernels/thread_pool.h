// A small persistent pool for splitting one large arena pass over the cores.
//
// One pool per addon instance (so per worker_thread), created once: spawning threads per update
// would cost more than a small update itself. Jobs are serialised: Run() blocks until every part
// is done, and a second caller (another async update) waits for the first to finish.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace model_ema {

class ThreadPool {
 public:
  // `threads` counts the calling thread too: ThreadPool(2) starts one worker.
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned threads() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Calls part(i) for every i in [0, parts), part 0 on the calling thread, and returns when all
  // are done. parts is clamped to threads(). part must not throw.
  void Run(unsigned parts, const std::function<void(unsigned)>& part);

 private:
  void WorkerLoop(unsigned index);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;  // bumped per job, guarded by mutex_
  bool stopping_ = false;
  unsigned parts_ = 0;
  const std::function<void(unsigned)>* job_ = nullptr;
  std::atomic<unsigned> pending_{0};
};

}  // namespace model_ema
