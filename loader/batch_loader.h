// The loader: merges key lookups that wait at the same moment, from every
// caller, into one `SELECT ... WHERE key = ANY($1)` per (entity, key column),
// and hands each caller exactly its own keys back, in its order.
//
// No fixed delay. A lookup is sent as soon as its queue has no query in
// flight, so a lone caller pays no batching wait. While a query runs, newly
// arriving keys gather and leave together the moment it returns (natural
// batching, like a database's group commit). A batch holds at most
// max_keys_per_query distinct keys. A backlog of parallel_min_keys or more is
// spread evenly over free connections instead of waiting. max_wait > 0
// trades latency for larger batches.
//
// A batch in flight whose every caller was cancelled is cancelled in
// PostgreSQL too (storage::StatementCancel), so that callers who went away
// do not hold a database connection until their query ends.
//
// Keys are deduplicated within a batch only. Without a RowCache every answer
// comes from a query that started after the lookup arrived. With one
// (Options::cache), primary-key lookups of its entities are answered from it
// where it can vouch for the rows: a lookup all of whose keys are cached is
// answered inline, on the calling thread, with no hand-off to the executor;
// a partly cached one sends only its other keys through the batches. Every
// batch of a cached entity fills the cache under its fill protocol (see
// loader/row_cache.h): primary-key batches with their rows and missing
// keys, other key columns with the rows they found (by primary key).
//
// Thread-safe. Load() and Cancel() never block. The loader must outlive every
// task it gave its BatchExecutor (shut the executor down first).
//
// Example:
//   Loader loader(options, executor);
//   auto ticket = loader.Load({entity, entity->primary_key, {"1", "4", "4"}},
//       [](absl::StatusOr<LoadResult> result) { ... });
//   ...
//   loader.Cancel(ticket, absl::CancelledError("client went away"));
#ifndef ROWGATE_LOADER_BATCH_LOADER_H_
#define ROWGATE_LOADER_BATCH_LOADER_H_

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loader/loader_stats.h"
#include "loader/row_cache.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/mutex.h"
#include "storage/table_ops.h"
#include "storage/worker_pool.h"

namespace rowgate::loader {

// Where batches run. The production one is PoolBatchExecutor (a
// storage::WorkerPool); tests use one whose fetch blocks until released.
class BatchExecutor {
 public:
  // Runs a lookup; blocks on the database. Past `deadline` the query is
  // cancelled (DEADLINE_EXCEEDED), and once `cancel` is cancelled (every
  // caller of the batch went away) it is cancelled too (CANCELLED).
  using FetchFn = absl::FunctionRef<absl::StatusOr<storage::KeyedRows>(
      const storage::Entity& entity, int key_column,
      const std::vector<std::string>& keys, absl::Time deadline,
      storage::StatementCancel* cancel)>;
  using Task = absl::AnyInvocable<void(FetchFn fetch) &&>;

  virtual ~BatchExecutor() = default;
  // Runs `task` on a database worker as soon as one is free. Never blocks.
  virtual void Run(Task task) = 0;
};

// Runs batches on a storage::WorkerPool, each on the worker's connection.
class PoolBatchExecutor : public BatchExecutor {
 public:
  explicit PoolBatchExecutor(storage::WorkerPool& pool) : pool_(pool) {}
  void Run(Task task) override;

 private:
  storage::WorkerPool& pool_;
};

struct IncludePlan;    // include_walk.h
struct IncludeResult;  // include_walk.h

struct LoadRequest {
  const storage::Entity* entity = nullptr;
  int key_column = -1;
  // Canonical key texts (storage::CanonicalKey), in the caller's order;
  // duplicates allowed.
  std::vector<std::string> keys;
  // The caller's deadline. A batch's query is cancelled in PostgreSQL once
  // the latest deadline among its waiters has passed.
  absl::Time deadline = absl::InfiniteFuture();
  // Relations to follow from the rows found (include_walk.h). The Loader
  // itself ignores them: DataServiceImpl::StartLookup walks them once this
  // lookup is answered, and answers with LoadResult::included.
  std::shared_ptr<const std::vector<IncludePlan>> includes;
};

struct LoadResult {
  // Per requested key, in order: the rows found, or nullptr when none.
  std::vector<const std::vector<storage::Row>*> rows_per_key;
  // Keeps the rows pointed to alive; batches are shared among callers.
  std::vector<std::shared_ptr<const storage::KeyedRows>> batches;
  // What LoadRequest::includes found; null without includes.
  std::shared_ptr<const IncludeResult> included;
  // Keeps rows (and encodings) answered from the RowCache alive.
  std::vector<CachedEntry> cached;
  // Empty, or per requested key: the row's encoding where the RowCache
  // answered it with one (RowCache::Options::encode_row), else empty.
  // Points into `cached`.
  std::vector<absl::string_view> wire_per_key;
};

using LoadCallback = absl::AnyInvocable<void(absl::StatusOr<LoadResult>) &&>;

// One caller's lookup in flight. Opaque; hold it to Cancel.
class LoadTicket;

class Loader {
 public:
  struct Options {
    // false: one query per Load, never merged (for comparison in benches).
    bool merge = true;
    size_t max_keys_per_query = 1000;
    // Queries in flight per (entity, key column) before new keys wait for
    // one to return. Beyond it, another query starts only for a backlog of
    // at least parallel_min_keys keys: small batches are better gathered
    // behind the query in flight, large ones better spread over connections.
    int max_inflight_per_queue = 1;
    // 256: one-key calls, up to a few hundred in flight, gather (fewer
    // queries, measured in `make bench`); backlogs of 100-key calls spread.
    size_t parallel_min_keys = 256;
    // Upper bound for queries in flight per queue (the pool's size).
    int max_parallel_split = 4;
    // Hold a batch this long for more keys (0: send at once).
    absl::Duration max_wait = absl::ZeroDuration();
    // Keys waiting to be sent, over all queues; beyond it Load answers
    // RESOURCE_EXHAUSTED at once.
    size_t max_pending_keys = 100000;
    // Not owned; null: no cache. Must outlive the loader.
    RowCache* cache = nullptr;
  };

  Loader(Options options, BatchExecutor& executor);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts a lookup. `done` runs exactly once: on a database worker with the
  // rows (or the batch's error), inside Cancel(), inline with
  // RESOURCE_EXHAUSTED when too many keys are pending, or inline with the
  // rows when the cache holds every key (the ticket is null then: there is
  // nothing to cancel). Never blocks.
  std::shared_ptr<LoadTicket> Load(LoadRequest request, LoadCallback done);

  // Answers the lookup with `status` now unless it has been answered already,
  // and drops its keys from batches not yet sent. Never blocks.
  void Cancel(const std::shared_ptr<LoadTicket>& ticket, absl::Status status);

  LoaderStatsSnapshot Stats() const { return stats_.Snapshot(); }

 private:
  // One (entity, key column): its waiting lookups and its queries in flight.
  // Defined here, not in the .cc, so the lock annotations below can name
  // its mutex.
  struct KeyQueue {
    KeyQueue(const storage::Entity* entity, int key_column)
        : entity(entity), key_column(key_column) {}
    const storage::Entity* const entity;
    const int key_column;

    storage::Mutex mu;
    // Tickets with keys not yet in a batch, oldest first.
    std::deque<std::shared_ptr<LoadTicket>> pending ABSL_GUARDED_BY(mu);
    size_t pending_keys ABSL_GUARDED_BY(mu) = 0;
    int inflight ABSL_GUARDED_BY(mu) = 0;
    // A RunBatch task is queued on the executor (or held by the timer).
    bool scheduled ABSL_GUARDED_BY(mu) = false;
  };

 public:
  struct Batch;  // opaque; public for LoadTicket only

 private:
  KeyQueue& QueueFor(const storage::Entity* entity, int key_column);
  // Load() past the cache: every key goes to the database.
  std::shared_ptr<LoadTicket> Submit(LoadRequest request, LoadCallback done);
  // Answers what the cache holds; submits the rest.
  std::shared_ptr<LoadTicket> LoadThroughCache(LoadRequest request,
                                               LoadCallback done);
  // Whether batches of this queue fill the cache.
  bool Fills(const storage::Entity* entity) const {
    return options_.cache != nullptr && options_.cache->Caches(entity);
  }
  void FillCache(const storage::Entity& entity, int key_column,
                 const std::vector<std::string>& keys,
                 const storage::KeyedRows& rows, const FillToken& token);
  void MaybeSchedule(KeyQueue& queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue.mu);
  void TakeBatch(KeyQueue& queue, Batch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue.mu);
  size_t BatchLimit(const KeyQueue& queue) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue.mu);
  void DropPendingKeys(KeyQueue& queue, LoadTicket& ticket)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue.mu);
  // `ticket` (cancelled) no longer waits for its batches in flight: those
  // it was the last waiter of are cancelled.
  void CancelUnwaitedLocked(KeyQueue& queue, LoadTicket& ticket)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue.mu);
  void RunBatch(KeyQueue& queue, BatchExecutor::FetchFn fetch);
  void RunUnmerged(std::shared_ptr<LoadTicket> ticket,
                   BatchExecutor::FetchFn fetch);
  void TimerLoop();

  const Options options_;
  BatchExecutor& executor_;
  LoaderStats stats_;
  std::atomic<size_t> pending_keys_{0};

  // Not absl::Mutex: Debian's abseil is built without ThreadSanitizer
  // annotations, and the loader's tests must run clean under `make tsan`
  // (see storage/mutex.h).
  storage::SharedMutex queues_mu_;
  absl::flat_hash_map<std::pair<const storage::Entity*, int>,
                      std::unique_ptr<KeyQueue>>
      queues_ ABSL_GUARDED_BY(queues_mu_);

  // Only with max_wait > 0: queues whose batch is held until a deadline.
  storage::Mutex timer_mu_;
  storage::CondVar timer_changed_;
  std::multimap<absl::Time, KeyQueue*> timers_ ABSL_GUARDED_BY(timer_mu_);
  bool stopping_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread timer_thread_;
};

}  // namespace rowgate::loader

#endif  // ROWGATE_LOADER_BATCH_LOADER_H_
