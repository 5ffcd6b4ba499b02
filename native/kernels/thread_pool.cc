#include "thread_pool.h"

#include <system_error>

namespace model_ema {

ThreadPool::ThreadPool(unsigned threads) {
  unsigned workers = threads > 1 ? threads - 1 : 0;
  workers_.reserve(workers);
  try {
    for (unsigned i = 0; i < workers; ++i) workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
  } catch (const std::system_error&) {
    // No more threads (a process or container limit): run with those that started. Letting this
    // escape would destroy workers_ with joinable threads in it, which is std::terminate.
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::Run(unsigned parts, const std::function<void(unsigned)>& part) {
  if (parts > threads()) parts = threads();
  if (parts <= 1) {
    if (parts == 1) part(0);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &part;
    parts_ = parts;
    pending_.store(parts - 1, std::memory_order_relaxed);
    ++generation_;
  }
  wake_.notify_all();
  part(0);
  // The workers' share is usually done by the time ours is; spin briefly before sleeping, since a
  // futex round trip costs more than a small tail of work.
  for (int spin = 0; spin < 4096 && pending_.load(std::memory_order_acquire) != 0; ++spin) {
    std::this_thread::yield();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(unsigned)>* job;
    unsigned parts;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      parts = parts_;
    }
    if (index < parts) {
      (*job)(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);  // pairs with the waiter's predicate check
        done_.notify_one();
      }
    }
  }
}

}  // namespace model_ema
