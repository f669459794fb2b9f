#include "loader/batch_loader.h"

#include <algorithm>
#include <deque>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace rowgate::loader {

void PoolBatchExecutor::Run(Task task) {
  pool_.Post([task = std::move(task)](storage::Connection& conn) mutable {
    std::move(task)([&conn](const storage::Entity& entity, int key_column,
                            const std::vector<std::string>& keys,
                            absl::Time deadline,
                            storage::StatementCancel* cancel) {
      conn.set_deadline(deadline);
      storage::ScopedStatementCancel scoped(conn, cancel);
      return storage::FetchByKeys(conn, entity, key_column, keys);
    });
  });
}

class LoadTicket {
 public:
  LoadTicket(LoadRequest request, LoadCallback done)
      : request(std::move(request)), done(std::move(done)) {}

  // True for exactly one caller: the one that answers.
  bool Claim() { return !answered.exchange(true, std::memory_order_acq_rel); }
  bool IsAnswered() const { return answered.load(std::memory_order_acquire); }

  const LoadRequest request;
  LoadCallback done;
  std::atomic<bool> answered{false};
  const absl::Time arrived = absl::Now();

  // Guarded by the queue's mutex (Loader::KeyQueue::mu).
  size_t next_key = 0;  // keys before it are in a batch (or dropped)
  int outstanding_batches = 0;
  // Batches in flight with this ticket among their waiters.
  std::vector<Loader::Batch*> inflight;
  bool dispatch_recorded = false;
  std::vector<std::shared_ptr<const storage::KeyedRows>> batches;
};

struct Loader::Batch {
  std::vector<std::string> keys;  // distinct
  std::vector<std::shared_ptr<LoadTicket>> tickets;
  // The latest deadline of its waiters: the query is useful until then.
  absl::Time deadline = absl::InfinitePast();
  // Waiters not cancelled yet (under the queue's mutex); at 0 the query
  // is of no use to anyone and `cancel` ends it.
  size_t waiting = 0;
  std::unique_ptr<storage::StatementCancel> cancel =
      std::make_unique<storage::StatementCancel>();
};

namespace {

LoadResult Assemble(const LoadTicket& ticket) {
  LoadResult result;
  result.batches = ticket.batches;
  result.rows_per_key.reserve(ticket.request.keys.size());
  for (const std::string& key : ticket.request.keys) {
    const std::vector<storage::Row>* rows = nullptr;
    for (const auto& batch : ticket.batches) {
      auto it = batch->by_key.find(key);
      if (it != batch->by_key.end()) {
        rows = &it->second;
        break;
      }
    }
    result.rows_per_key.push_back(rows);
  }
  return result;
}

}  // namespace

Loader::Loader(Options options, BatchExecutor& executor)
    : options_(std::move(options)), executor_(executor) {
  if (options_.max_wait > absl::ZeroDuration()) {
    timer_thread_ = std::thread([this] { TimerLoop(); });
  }
}

Loader::~Loader() {
  {
    storage::MutexLock lock(&timer_mu_);
    stopping_ = true;
  }
  timer_changed_.SignalAll();
  if (timer_thread_.joinable()) timer_thread_.join();
}

Loader::KeyQueue& Loader::QueueFor(const storage::Entity* entity,
                                   int key_column) {
  const auto id = std::make_pair(entity, key_column);
  {
    storage::ReaderLock lock(&queues_mu_);
    auto it = queues_.find(id);
    if (it != queues_.end()) return *it->second;
  }
  storage::WriterLock lock(&queues_mu_);
  auto& slot = queues_[id];
  if (!slot) slot = std::make_unique<KeyQueue>(entity, key_column);
  return *slot;
}

std::shared_ptr<LoadTicket> Loader::Load(LoadRequest request,
                                         LoadCallback done) {
  stats_.RecordRequest(request.keys.size());
  if (options_.cache != nullptr && !request.keys.empty() &&
      request.key_column == request.entity->primary_key &&
      options_.cache->Caches(request.entity)) {
    return LoadThroughCache(std::move(request), std::move(done));
  }
  return Submit(std::move(request), std::move(done));
}

std::shared_ptr<LoadTicket> Loader::LoadThroughCache(LoadRequest request,
                                                     LoadCallback done) {
  const size_t n = request.keys.size();
  std::vector<CachedEntry> cached(n);
  // Keys the cache cannot answer, and where they go in the answer.
  std::vector<std::string> missing;
  std::vector<size_t> missing_at;
  for (size_t i = 0; i < n; ++i) {
    const RowCache::Answer answer =
        options_.cache->Lookup(*request.entity, request.keys[i], &cached[i]);
    if (answer == RowCache::Answer::kUnknown) {
      missing.push_back(request.keys[i]);
      missing_at.push_back(i);
    }
  }
  // What the cache answered, in `result`; the rows of missing_at stay null.
  auto answer_from_cache = [n](std::vector<CachedEntry> cached,
                               LoadResult& result) {
    result.rows_per_key.resize(n, nullptr);
    result.wire_per_key.resize(n);
    for (size_t i = 0; i < n; ++i) {
      result.rows_per_key[i] = cached[i].rows();
      result.wire_per_key[i] = cached[i].wire();
    }
    result.cached = std::move(cached);
  };
  if (missing.empty()) {
    LoadResult result;
    answer_from_cache(std::move(cached), result);
    std::move(done)(std::move(result));
    return nullptr;
  }
  LoadRequest rest{request.entity, request.key_column, std::move(missing),
                   request.deadline};
  return Submit(
      std::move(rest),
      [answer_from_cache, cached = std::move(cached),
       missing_at = std::move(missing_at),
       done = std::move(done)](absl::StatusOr<LoadResult> fetched) mutable {
        if (!fetched.ok()) return std::move(done)(fetched.status());
        LoadResult result;
        answer_from_cache(std::move(cached), result);
        for (size_t j = 0; j < missing_at.size(); ++j) {
          result.rows_per_key[missing_at[j]] = fetched->rows_per_key[j];
        }
        result.batches = std::move(fetched->batches);
        std::move(done)(std::move(result));
      });
}

void Loader::FillCache(const storage::Entity& entity, int key_column,
                       const std::vector<std::string>& keys,
                       const storage::KeyedRows& rows, const FillToken& token) {
  if (!token.valid) return;
  RowCache& cache = *options_.cache;
  if (key_column == entity.primary_key) {
    for (const std::string& key : keys) {
      auto it = rows.by_key.find(key);
      cache.Install(
          token, entity, key,
          it == rows.by_key.end()
              ? nullptr
              : std::make_shared<const std::vector<storage::Row>>(it->second));
    }
    return;
  }
  // Another key column: the rows found are primary-key rows too (a key
  // with none found says nothing about any primary key).
  for (const auto& [key, found] : rows.by_key) {
    for (const storage::Row& row : found) {
      cache.Install(token, entity, storage::KeyText(row[entity.primary_key]),
                    std::make_shared<const std::vector<storage::Row>>(
                        std::vector<storage::Row>{row}));
    }
  }
}

std::shared_ptr<LoadTicket> Loader::Submit(LoadRequest request,
                                           LoadCallback done) {
  const size_t key_count = request.keys.size();
  auto ticket =
      std::make_shared<LoadTicket>(std::move(request), std::move(done));
  if (key_count == 0) {
    ticket->Claim();
    std::move(ticket->done)(LoadResult{});
    return ticket;
  }
  // Reserve room among the pending keys, or refuse at once.
  size_t pending = pending_keys_.load(std::memory_order_relaxed);
  do {
    if (pending + key_count > options_.max_pending_keys) {
      stats_.RecordRejected();
      ticket->Claim();
      std::move(ticket->done)(absl::ResourceExhaustedError(absl::StrCat(
          "rowgate is overloaded: ", pending,
          " keys are already waiting for the database; retry later")));
      return ticket;
    }
  } while (!pending_keys_.compare_exchange_weak(pending, pending + key_count,
                                                std::memory_order_relaxed));

  if (!options_.merge) {
    executor_.Run([this, ticket](BatchExecutor::FetchFn fetch) {
      RunUnmerged(ticket, fetch);
    });
    return ticket;
  }
  KeyQueue& queue =
      QueueFor(ticket->request.entity, ticket->request.key_column);
  storage::MutexLock lock(&queue.mu);
  queue.pending.push_back(ticket);
  queue.pending_keys += key_count;
  MaybeSchedule(queue);
  return ticket;
}

void Loader::Cancel(const std::shared_ptr<LoadTicket>& ticket,
                    absl::Status status) {
  if (ticket == nullptr || !ticket->Claim()) return;
  stats_.RecordCancelled();
  if (options_.merge) {
    KeyQueue& queue =
        QueueFor(ticket->request.entity, ticket->request.key_column);
    storage::MutexLock lock(&queue.mu);
    DropPendingKeys(queue, *ticket);
    CancelUnwaitedLocked(queue, *ticket);
  }
  // Unmerged tickets release their reservation when their query returns.
  std::move(ticket->done)(std::move(status));
}

void Loader::CancelUnwaitedLocked(KeyQueue& queue, LoadTicket& ticket) {
  (void)queue;  // named for the lock annotation only
  for (Batch* batch : ticket.inflight) {
    if (--batch->waiting == 0) {
      // Never blocks: the statement's server-side cancel is sent by the
      // connection's watchdog thread.
      batch->cancel->Cancel();
      stats_.RecordQueryCancelled();
    }
  }
  ticket.inflight.clear();
}

void Loader::DropPendingKeys(KeyQueue& queue, LoadTicket& ticket) {
  const size_t left = ticket.request.keys.size() - ticket.next_key;
  ticket.next_key = ticket.request.keys.size();
  queue.pending_keys -= left;
  pending_keys_.fetch_sub(left, std::memory_order_relaxed);
  // The ticket itself leaves `pending` when TakeBatch reaches it.
}

void Loader::MaybeSchedule(KeyQueue& queue) {
  if (queue.scheduled || queue.pending_keys == 0) return;
  const bool backlog = queue.pending_keys >= options_.max_keys_per_query;
  const bool worth_another_connection =
      queue.pending_keys >=
      std::min(options_.parallel_min_keys, options_.max_keys_per_query);
  if (queue.inflight >= options_.max_inflight_per_queue &&
      !(worth_another_connection &&
        queue.inflight < options_.max_parallel_split)) {
    return;  // the query in flight picks these keys up when it returns
  }
  queue.scheduled = true;
  if (options_.max_wait > absl::ZeroDuration() && !backlog) {
    // Hold the batch until the oldest key has waited max_wait.
    const absl::Time due = queue.pending.front()->arrived + options_.max_wait;
    {
      storage::MutexLock lock(&timer_mu_);
      timers_.emplace(due, &queue);
    }
    timer_changed_.Signal();
    return;
  }
  executor_.Run(
      [this, &queue](BatchExecutor::FetchFn fetch) { RunBatch(queue, fetch); });
}

void Loader::TimerLoop() {
  storage::MutexLock lock(&timer_mu_);
  while (!stopping_) {
    const absl::Time now = absl::Now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      KeyQueue* queue = timers_.begin()->second;
      timers_.erase(timers_.begin());
      executor_.Run([this, queue](BatchExecutor::FetchFn fetch) {
        RunBatch(*queue, fetch);
      });
    }
    const absl::Time next = timers_.empty() ? now + absl::Milliseconds(100)
                                            : timers_.begin()->first;
    while (!stopping_ && (timers_.empty() || timers_.begin()->first >= next)) {
      if (!timer_changed_.WaitWithDeadline(&timer_mu_, next)) break;
    }
  }
}

size_t Loader::BatchLimit(const KeyQueue& queue) const {
  // Connections this queue may still use, counting the one about to run.
  const int free_slots = options_.max_parallel_split - queue.inflight;
  if (free_slots <= 1 || queue.pending_keys < options_.parallel_min_keys) {
    return options_.max_keys_per_query;
  }
  const size_t share = (queue.pending_keys + free_slots - 1) / free_slots;
  return std::min(std::max(share, options_.parallel_min_keys),
                  options_.max_keys_per_query);
}

void Loader::TakeBatch(KeyQueue& queue, Batch& batch) {
  absl::flat_hash_set<absl::string_view> seen;
  const absl::Time now = absl::Now();
  const size_t limit = BatchLimit(queue);
  while (!queue.pending.empty() && batch.keys.size() < limit) {
    std::shared_ptr<LoadTicket>& ticket = queue.pending.front();
    const std::vector<std::string>& keys = ticket->request.keys;
    bool attached = false;
    while (ticket->next_key < keys.size()) {
      const std::string& key = keys[ticket->next_key];
      if (!seen.contains(key)) {
        if (batch.keys.size() == limit) break;
        seen.insert(key);
        batch.keys.push_back(key);
      }
      ++ticket->next_key;
      --queue.pending_keys;
      pending_keys_.fetch_sub(1, std::memory_order_relaxed);
      attached = true;
    }
    if (attached) {
      batch.deadline = std::max(batch.deadline, ticket->request.deadline);
      ++ticket->outstanding_batches;
      ticket->inflight.push_back(&batch);
      ++batch.waiting;
      if (!ticket->dispatch_recorded) {
        ticket->dispatch_recorded = true;
        stats_.RecordDispatchWait(now - ticket->arrived);
      }
      batch.tickets.push_back(ticket);
    }
    if (ticket->next_key < keys.size()) break;  // the batch is full
    queue.pending.pop_front();
  }
}

void Loader::RunBatch(KeyQueue& queue, BatchExecutor::FetchFn fetch) {
  Batch batch;
  {
    storage::MutexLock lock(&queue.mu);
    queue.scheduled = false;
    TakeBatch(queue, batch);
    if (batch.keys.empty()) {
      // Every waiter was cancelled: nothing is sent.
      MaybeSchedule(queue);
      return;
    }
    ++queue.inflight;
    MaybeSchedule(queue);  // a backlog beyond this batch may start another
  }
  const bool fills = Fills(queue.entity);
  while (true) {
    // Captured before the statement is sent (the fill protocol).
    const FillToken token = fills ? options_.cache->BeginFill() : FillToken{};
    absl::StatusOr<storage::KeyedRows> fetched =
        fetch(*queue.entity, queue.key_column, batch.keys, batch.deadline,
              batch.cancel.get());
    stats_.RecordQuery(batch.keys.size(),
                       !fetched.ok() && !batch.cancel->cancelled());
    std::shared_ptr<const storage::KeyedRows> rows;
    if (fetched.ok()) {
      rows = std::make_shared<const storage::KeyedRows>(std::move(*fetched));
    }

    // Answer outside the lock; collect who is complete while holding it.
    std::vector<std::shared_ptr<LoadTicket>> complete, failed;
    {
      storage::MutexLock lock(&queue.mu);
      for (std::shared_ptr<LoadTicket>& ticket : batch.tickets) {
        --ticket->outstanding_batches;
        // This batch may be reused for the next one: no ticket may point
        // at it any more.
        ticket->inflight.erase(std::remove(ticket->inflight.begin(),
                                           ticket->inflight.end(), &batch),
                               ticket->inflight.end());
        if (ticket->IsAnswered()) continue;
        // Claimed under the lock: a ticket split over several batches must
        // be seen as answered by its other batches at once. Were it claimed
        // after unlocking, another batch of it succeeding in that window
        // would find it complete and answer OK with this batch's keys
        // reported missing.
        if (rows == nullptr) {
          DropPendingKeys(queue, *ticket);
          if (ticket->Claim()) failed.push_back(std::move(ticket));
          continue;
        }
        ticket->batches.push_back(rows);
        if (ticket->outstanding_batches == 0 &&
            ticket->next_key == ticket->request.keys.size() &&
            ticket->Claim()) {
          complete.push_back(std::move(ticket));
        }
      }
    }
    // The connection stays counted as in flight while its answers are
    // delivered: keys arriving meanwhile gather for the next batch.
    for (auto& ticket : failed) std::move(ticket->done)(fetched.status());
    for (auto& ticket : complete) {
      // Complete tickets are no longer touched by the queue: read unlocked.
      std::move(ticket->done)(Assemble(*ticket));
    }
    // After the answers: a miss is not made to wait for the copies.
    if (fills && rows != nullptr) {
      FillCache(*queue.entity, queue.key_column, batch.keys, *rows, token);
    }
    storage::MutexLock lock(&queue.mu);
    --queue.inflight;
    // This connection is free again: send what gathered from here, without
    // waking another worker (unless a timer holds batches back).
    if (!queue.scheduled && queue.pending_keys > 0 &&
        queue.inflight < options_.max_inflight_per_queue &&
        options_.max_wait == absl::ZeroDuration()) {
      batch = Batch();
      TakeBatch(queue, batch);
      if (!batch.keys.empty()) {
        ++queue.inflight;
        MaybeSchedule(queue);
        continue;
      }
    }
    MaybeSchedule(queue);
    return;
  }
}

void Loader::RunUnmerged(std::shared_ptr<LoadTicket> ticket,
                         BatchExecutor::FetchFn fetch) {
  const size_t key_count = ticket->request.keys.size();
  pending_keys_.fetch_sub(key_count, std::memory_order_relaxed);
  if (ticket->IsAnswered()) return;  // cancelled before it was sent
  stats_.RecordDispatchWait(absl::Now() - ticket->arrived);
  // Deduplicated within the request, as any caller would.
  std::vector<std::string> keys;
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& key : ticket->request.keys) {
    if (seen.insert(key).second) keys.push_back(key);
  }
  const bool fills = Fills(ticket->request.entity);
  const FillToken token = fills ? options_.cache->BeginFill() : FillToken{};
  absl::StatusOr<storage::KeyedRows> fetched =
      fetch(*ticket->request.entity, ticket->request.key_column, keys,
            ticket->request.deadline, /*cancel=*/nullptr);
  stats_.RecordQuery(keys.size(), !fetched.ok());
  if (fills && fetched.ok()) {
    FillCache(*ticket->request.entity, ticket->request.key_column, keys,
              *fetched, token);
  }
  if (!ticket->Claim()) return;
  if (!fetched.ok()) {
    std::move(ticket->done)(fetched.status());
    return;
  }
  ticket->batches.push_back(
      std::make_shared<const storage::KeyedRows>(std::move(*fetched)));
  std::move(ticket->done)(Assemble(*ticket));
}

}  // namespace rowgate::loader
