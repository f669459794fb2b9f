#include "storage/worker_pool.h"

#include <utility>

namespace rowgate::storage {

WorkerPool::WorkerPool(Options options) : options_(std::move(options)) {
  const int size = options_.size > 0 ? options_.size : 1;
  threads_.reserve(size);
  for (int i = 0; i < size; ++i) {
    threads_.emplace_back([this, i] { Run(i); });
  }
}

WorkerPool::~WorkerPool() { Shutdown(); }

void WorkerPool::Shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_ready_.SignalAll();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void WorkerPool::Post(Task task) {
  {
    MutexLock lock(&mu_);
    queue_.push_back(std::move(task));
  }
  work_ready_.Signal();
}

absl::Status WorkerPool::TryPost(Task task) {
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("rowgate is shutting down");
    }
    if (queue_.size() >= options_.max_queued) {
      return absl::ResourceExhaustedError(
          "too many database operations are waiting; retry later");
    }
    queue_.push_back(std::move(task));
  }
  work_ready_.Signal();
  return absl::OkStatus();
}

size_t WorkerPool::queued() const {
  MutexLock lock(&mu_);
  return queue_.size();
}

void WorkerPool::Run(int index) {
  (void)index;
  Connection conn(options_.database_url, &watchdog_);
  while (true) {
    Task task;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) work_ready_.Wait(&mu_);
      // Drain before stopping: every queued caller gets its answer.
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    busy_.fetch_add(1, std::memory_order_relaxed);
    conn.set_deadline(absl::InfiniteFuture());
    std::move(task)(conn);
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace rowgate::storage
