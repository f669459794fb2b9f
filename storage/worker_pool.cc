#include "storage/worker_pool.h"

#include <algorithm>
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

void WorkerPool::Shutdown(absl::Time drain_by) {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    drain_by_ = std::min(drain_by_, drain_by);
  }
  work_ready_.SignalAll();
  // A statement still running when the drain's time is up (a database that
  // went silent) is cut off, so the join below is bounded.
  uint64_t alarm = 0;
  if (drain_by != absl::InfiniteFuture()) {
    alarm = watchdog_.Arm(drain_by + options_.timeouts.cancel_grace, [this] {
      MutexLock lock(&mu_);
      for (Connection* conn : connections_) conn->Interrupt();
    });
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  if (alarm != 0) watchdog_.Disarm(alarm);
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
  Connection conn(options_.database_url, &watchdog_, options_.timeouts);
  {
    MutexLock lock(&mu_);
    connections_.push_back(&conn);
  }
  while (true) {
    Task task;
    absl::Time drain_by;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) work_ready_.Wait(&mu_);
      // Drain before stopping: every queued caller gets its answer.
      if (queue_.empty()) {
        connections_.erase(
            std::find(connections_.begin(), connections_.end(), &conn));
        return;
      }
      task = std::move(queue_.front());
      queue_.pop_front();
      drain_by = drain_by_;
    }
    busy_.fetch_add(1, std::memory_order_relaxed);
    conn.set_deadline(absl::InfiniteFuture());
    conn.set_deadline_cap(drain_by);
    std::move(task)(conn);
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace rowgate::storage
