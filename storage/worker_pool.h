// The bounded pool of database workers: N threads, each owning one
// Connection, running tasks in FIFO order. This is the only place rowgate
// blocks on PostgreSQL; gRPC threads hand their work here and return.
//
// Thread-safe. Tasks may post further tasks. The destructor stops taking
// tasks, runs those already queued (so every caller is answered), then joins
// the threads (see Shutdown); it must not run on one of the pool's own
// threads.
//
// Example:
//   WorkerPool pool({.database_url = url, .size = 4});
//   pool.Post([](Connection& conn) { conn.Execute("SELECT 1", {}); });
#ifndef ROWGATE_STORAGE_WORKER_POOL_H_
#define ROWGATE_STORAGE_WORKER_POOL_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "storage/connection.h"
#include "storage/deadline_watchdog.h"
#include "storage/mutex.h"

namespace rowgate::storage {

class WorkerPool {
 public:
  struct Options {
    std::string database_url;
    int size = 4;
    // TryPost refuses work beyond this many queued tasks.
    size_t max_queued = 10000;
    // Bounds on connecting and on each statement (see conninfo.h).
    DatabaseTimeouts timeouts;
  };
  using Task = absl::AnyInvocable<void(Connection&) &&>;

  explicit WorkerPool(Options options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;

  // Runs the tasks already queued, then stops the workers. Tasks posted
  // after the workers stopped never run. Statements of the drain must end by
  // `drain_by` (those that would start later answer DEADLINE_EXCEEDED
  // without being sent), so a database that stopped answering holds the
  // drain up to drain_by plus timeouts.cancel_grace, or a connect attempt
  // in progress (timeouts.connect), never longer. Idempotent; blocks; not
  // from a worker thread.
  void Shutdown(absl::Time drain_by = absl::InfiniteFuture());
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; it runs on a worker with that worker's connection, whose
  // deadline starts as none (a task may set one with set_deadline). Never
  // blocks and never refuses: for callers that bound their own work (the
  // loader).
  void Post(Task task);

  // Like Post, but RESOURCE_EXHAUSTED (and `task` is dropped) when
  // max_queued tasks are already waiting. Never blocks.
  absl::Status TryPost(Task task);

  int size() const { return static_cast<int>(threads_.size()); }
  // Tasks waiting for a worker, and workers running one (for metrics).
  size_t queued() const;
  int busy() const { return busy_.load(std::memory_order_relaxed); }

 private:
  void Run(int index);

  const Options options_;
  // Cancels statements that outlive their caller's deadline (see
  // Connection::set_deadline); declared first, destroyed last.
  DeadlineWatchdog watchdog_;
  // Not absl::Mutex: Debian's abseil is built without ThreadSanitizer
  // annotations, and `make tsan` must see every lock (see storage/mutex.h).
  mutable Mutex mu_;
  CondVar work_ready_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_by_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::atomic<int> busy_{0};
  // Each worker's connection while it runs, for Shutdown to interrupt.
  std::vector<Connection*> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_WORKER_POOL_H_
