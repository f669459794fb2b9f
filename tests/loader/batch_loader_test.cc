// The loader's batching, deduplication, fan-out, cancellation, failure and
// overload rules, made deterministic with an executor whose fetch blocks
// until the test opens a gate. (End-to-end proof against PostgreSQL, with
// pg_stat_statements counts, is in tests/e2e/loader_e2e_test.cc.)
#include "loader/batch_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rowgate::loader {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// Keys "1".."100" exist; row = {id, "row<id>"}.
std::shared_ptr<const storage::Catalog> TestCatalog() {
  storage::Entity things;
  things.name = "things";
  things.qualified_name = "\"public\".\"things\"";
  storage::Column id;
  id.name = "id";
  id.quoted_name = "\"id\"";
  id.type = storage::ColumnType::kInt64;
  storage::Column name;
  name.name = "name";
  name.quoted_name = "\"name\"";
  name.type = storage::ColumnType::kText;
  things.columns = {id, name};
  things.primary_key = 0;
  return storage::Catalog::FromEntities({std::move(things)});
}

// What the test table holds for `keys`: ids 1..100, row = {id, "row<id>"}.
storage::KeyedRows TestRows(const std::vector<std::string>& keys) {
  storage::KeyedRows rows;
  for (const std::string& key : keys) {
    int64_t id;
    if (absl::SimpleAtoi(key, &id) && id >= 1 && id <= 100) {
      rows.by_key[key].push_back({id, absl::StrCat("row", id)});
    }
  }
  return rows;
}

// Runs tasks on its own threads; every fetch is recorded and waits at a gate
// the test controls. std::mutex (not absl::Mutex) so ThreadSanitizer sees
// the synchronization: Debian's abseil carries no TSAN annotations.
class GatedExecutor : public BatchExecutor {
 public:
  explicit GatedExecutor(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Work(); });
    }
  }
  ~GatedExecutor() override { Shutdown(); }

  // Runs what is queued, then joins the threads. Idempotent.
  void Shutdown() {
    Open();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  void Run(Task task) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    changed_.notify_all();
  }

  void Close() { SetOpen(false); }
  void Open() { SetOpen(true); }
  void FailNext() {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = true;
  }
  // Blocks until `n` fetches have started.
  void AwaitFetches(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return fetches_.size() >= n; });
  }
  std::vector<std::vector<std::string>> fetches() {
    std::lock_guard<std::mutex> lock(mu_);
    return fetches_;
  }

 private:
  void SetOpen(bool open) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = open;
    }
    changed_.notify_all();
  }

  absl::StatusOr<storage::KeyedRows> Fetch(
      const std::vector<std::string>& keys) {
    bool fail;
    {
      std::unique_lock<std::mutex> lock(mu_);
      fetches_.push_back(keys);
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_; });
      fail = fail_next_;
      fail_next_ = false;
    }
    if (fail) return absl::UnavailableError("backend terminated");
    return TestRows(keys);
  }

  void Work() {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        changed_.wait(lock, [&] { return !tasks_.empty() || stopping_; });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      std::move(task)(
          [this](const storage::Entity&, int,
                 const std::vector<std::string>& keys, absl::Time,
                 storage::StatementCancel*) { return Fetch(keys); });
    }
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Task> tasks_;
  std::vector<std::vector<std::string>> fetches_;
  bool open_ = true;
  bool fail_next_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// The loader must outlive every task it gave its executor. Declared right
// after the loader, this stops the executor before the loader is destroyed,
// as Server::Shutdown drains the pool before the loader goes.
template <typename Executor>
class ExecutorStopsFirst {
 public:
  explicit ExecutorStopsFirst(Executor& executor) : executor_(executor) {}
  ~ExecutorStopsFirst() { executor_.Shutdown(); }

 private:
  Executor& executor_;
};

// A one-shot latch TSAN can see through (absl::Notification is built on
// the uninstrumented absl::Mutex).
class Latch {
 public:
  // Notifies under the lock: the waiter may destroy the latch as soon as it
  // sees set_.
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return set_; });
  }
  bool HasBeenNotified() {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// Collects one lookup's answer: the ids found per key (-1 for missing).
struct Answer {
  Latch done;
  absl::Status status;
  std::vector<int64_t> ids;
  std::atomic<int> calls{0};

  LoadCallback Callback() {
    return [this](absl::StatusOr<LoadResult> result) {
      ++calls;
      if (!result.ok()) {
        status = result.status();
      } else {
        for (const auto* rows : result->rows_per_key) {
          ids.push_back(rows == nullptr ? -1
                                        : std::get<int64_t>((*rows)[0][0]));
        }
      }
      done.Notify();
    };
  }
};

// Every fetch waits until the test releases it by its start order, with
// success or a failure of the test's choosing: it makes one interleaving of
// concurrent batches happen on purpose. Counts tasks that have returned.
class ScriptedExecutor : public BatchExecutor {
 public:
  explicit ScriptedExecutor(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~ScriptedExecutor() override { Shutdown(); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;  // fetches not released return CANCELLED
    }
    changed_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  void Run(Task task) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    changed_.notify_all();
  }

  // Lets fetch number `n` (0-based, in start order) return: rows for the
  // keys 1..100 when `status` is OK, else `status`.
  void Release(size_t n, absl::Status status = absl::OkStatus()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (releases_.size() <= n) releases_.resize(n + 1);
      releases_[n] = std::move(status);
    }
    changed_.notify_all();
  }
  // Tasks queued while held start only at StartTasks().
  void HoldTasks() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  void StartTasks() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = false;
    }
    changed_.notify_all();
  }
  void AwaitFetches(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return fetches_.size() >= n; });
  }
  void AwaitTasksReturned(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return tasks_returned_ >= n; });
  }
  std::vector<std::vector<std::string>> fetches() {
    std::lock_guard<std::mutex> lock(mu_);
    return fetches_;
  }
  // Whether fetch `n` (started, not yet released) was asked to stop: every
  // caller of its batch went away.
  bool FetchCancelled(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    return cancels_.at(n) != nullptr && cancels_[n]->cancelled();
  }

 private:
  absl::StatusOr<storage::KeyedRows> Fetch(const std::vector<std::string>& keys,
                                           storage::StatementCancel* cancel) {
    absl::Status status;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const size_t n = fetches_.size();
      fetches_.push_back(keys);
      cancels_.push_back(cancel);
      changed_.notify_all();
      changed_.wait(lock, [&] {
        return stopping_ || (releases_.size() > n && releases_[n].has_value());
      });
      status = releases_.size() > n && releases_[n].has_value()
                   ? *releases_[n]
                   : absl::CancelledError("executor shut down");
    }
    if (!status.ok()) return status;
    return TestRows(keys);
  }

  void Work() {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        changed_.wait(lock,
                      [&] { return (!tasks_.empty() && !hold_) || stopping_; });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      std::move(task)([this](const storage::Entity&, int,
                             const std::vector<std::string>& keys, absl::Time,
                             storage::StatementCancel* cancel) {
        return Fetch(keys, cancel);
      });
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++tasks_returned_;
      }
      changed_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Task> tasks_;
  std::vector<std::vector<std::string>> fetches_;
  std::vector<storage::StatementCancel*> cancels_;  // valid until released
  std::vector<std::optional<absl::Status>> releases_;
  size_t tasks_returned_ = 0;
  bool hold_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class LoaderTest : public ::testing::Test {
 protected:
  LoadRequest Request(std::vector<std::string> keys) {
    return LoadRequest{&catalog_->entities()[0], 0, std::move(keys)};
  }
  std::shared_ptr<const storage::Catalog> catalog_ = TestCatalog();
};

// The notebook's case: [1, 2, 3, 4, 4] is one query for 4 distinct keys,
// answered in order with the duplicate answered.
TEST_F(LoaderTest, AnswersDuplicateKeysInOrderWithOneQuery) {
  GatedExecutor executor(2);
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer answer;
  loader.Load(Request({"1", "2", "3", "4", "4"}), answer.Callback());
  answer.done.WaitForNotification();
  ASSERT_TRUE(answer.status.ok()) << answer.status;
  EXPECT_THAT(answer.ids, ElementsAre(1, 2, 3, 4, 4));
  EXPECT_THAT(executor.fetches(), ElementsAre(ElementsAre("1", "2", "3", "4")));
  EXPECT_EQ(loader.Stats().queries, 1u);
  EXPECT_EQ(loader.Stats().keys_queried, 4u);
}

TEST_F(LoaderTest, ReportsMissingKeys) {
  GatedExecutor executor(1);
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer answer;
  loader.Load(Request({"500", "7"}), answer.Callback());
  answer.done.WaitForNotification();
  EXPECT_THAT(answer.ids, ElementsAre(-1, 7));
}

// A lone request is sent at once: its fetch starts without any other
// request arriving and without a timer.
TEST_F(LoaderTest, LoneRequestIsDispatchedImmediately) {
  GatedExecutor executor(1);
  executor.Close();
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer answer;
  loader.Load(Request({"9"}), answer.Callback());
  executor.AwaitFetches(1);
  EXPECT_THAT(executor.fetches(), ElementsAre(ElementsAre("9")));
  executor.Open();
  answer.done.WaitForNotification();
  EXPECT_THAT(answer.ids, ElementsAre(9));
}

// While one query is in flight, new keys from many callers gather and leave
// together, deduplicated, as soon as it returns; each caller gets its own.
TEST_F(LoaderTest, KeysArrivingDuringAQueryShareTheNextBatch) {
  GatedExecutor executor(2);
  executor.Close();
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer first;
  loader.Load(Request({"1"}), first.Callback());
  executor.AwaitFetches(1);

  std::vector<std::unique_ptr<Answer>> answers;
  for (int i = 0; i < 20; ++i) {
    answers.push_back(std::make_unique<Answer>());
    loader.Load(Request({absl::StrCat(10 + i % 5), absl::StrCat(50 + i)}),
                answers.back()->Callback());
  }
  // Only the first query has been sent so far.
  EXPECT_EQ(executor.fetches().size(), 1u);
  executor.Open();
  for (int i = 0; i < 20; ++i) {
    answers[i]->done.WaitForNotification();
    EXPECT_THAT(answers[i]->ids, ElementsAre(10 + i % 5, 50 + i));
  }
  first.done.WaitForNotification();
  const auto fetches = executor.fetches();
  ASSERT_EQ(fetches.size(), 2u);
  EXPECT_EQ(fetches[1].size(), 25u);  // 5 shared keys + 20 distinct
  EXPECT_EQ(loader.Stats().queries, 2u);
  EXPECT_EQ(loader.Stats().keys, 41u);
}

TEST_F(LoaderTest, BatchesLargerThanTheCapAreSplit) {
  GatedExecutor executor(3);
  executor.Close();
  Loader::Options options;
  options.max_keys_per_query = 4;
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer first;
  loader.Load(Request({"1"}), first.Callback());
  executor.AwaitFetches(1);
  Answer big;
  loader.Load(Request({"2", "3", "4", "5", "6", "7", "8", "9", "10"}),
              big.Callback());
  executor.Open();
  big.done.WaitForNotification();
  EXPECT_THAT(big.ids, ElementsAre(2, 3, 4, 5, 6, 7, 8, 9, 10));
  for (const auto& fetch : executor.fetches()) EXPECT_LE(fetch.size(), 4u);
  first.done.WaitForNotification();
}

// A backlog of parallel_min_keys or more does not wait for the query in
// flight: it is spread over the free connections.
TEST_F(LoaderTest, LargeBacklogIsSpreadOverFreeConnections) {
  GatedExecutor executor(3);
  executor.Close();
  Loader::Options options;
  options.parallel_min_keys = 4;
  options.max_parallel_split = 3;
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer first;
  loader.Load(Request({"1"}), first.Callback());
  executor.AwaitFetches(1);
  Answer big;
  loader.Load(Request({"2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}),
              big.Callback());
  // Two more queries start while the first is still blocked.
  executor.AwaitFetches(3);
  const auto fetches = executor.fetches();
  EXPECT_EQ(fetches[1].size(), 5u);
  EXPECT_EQ(fetches[2].size(), 5u);
  executor.Open();
  big.done.WaitForNotification();
  EXPECT_THAT(big.ids, ElementsAre(2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  first.done.WaitForNotification();
}

// A small backlog gathers behind the query in flight instead.
TEST_F(LoaderTest, SmallBacklogWaitsForTheQueryInFlight) {
  GatedExecutor executor(3);
  executor.Close();
  Loader::Options options;
  options.parallel_min_keys = 64;
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer first, second;
  loader.Load(Request({"1"}), first.Callback());
  executor.AwaitFetches(1);
  loader.Load(Request({"2", "3"}), second.Callback());
  EXPECT_EQ(executor.fetches().size(), 1u);
  executor.Open();
  second.done.WaitForNotification();
  first.done.WaitForNotification();
  EXPECT_EQ(executor.fetches().size(), 2u);
}

// A cancelled caller is answered at once; a batch whose callers are all
// gone is never sent.
TEST_F(LoaderTest, CancelledWhileWaitingIsAnsweredAtOnceAndNotSent) {
  GatedExecutor executor(1);
  executor.Close();
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer first;
  loader.Load(Request({"1"}), first.Callback());
  executor.AwaitFetches(1);
  Answer waiting;
  auto ticket = loader.Load(Request({"2", "3"}), waiting.Callback());
  loader.Cancel(ticket, absl::DeadlineExceededError("deadline"));
  ASSERT_TRUE(waiting.done.HasBeenNotified());
  EXPECT_EQ(waiting.status.code(), absl::StatusCode::kDeadlineExceeded);
  executor.Open();
  first.done.WaitForNotification();
  // Cancelling twice, or after the answer, changes nothing.
  loader.Cancel(ticket, absl::CancelledError("again"));
  EXPECT_EQ(waiting.calls.load(), 1);
  // Only the first query ran: the cancelled keys were never sent.
  Answer after;
  loader.Load(Request({"4"}), after.Callback());
  after.done.WaitForNotification();
  EXPECT_THAT(executor.fetches(),
              ElementsAre(ElementsAre("1"), ElementsAre("4")));
  EXPECT_EQ(loader.Stats().cancelled, 1u);
}

TEST_F(LoaderTest, CancelledWhileTheQueryRunsIsAnsweredAtOnce) {
  GatedExecutor executor(1);
  executor.Close();
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer running;
  auto ticket = loader.Load(Request({"1"}), running.Callback());
  executor.AwaitFetches(1);
  loader.Cancel(ticket, absl::CancelledError("client went away"));
  ASSERT_TRUE(running.done.HasBeenNotified());
  EXPECT_EQ(running.status.code(), absl::StatusCode::kCancelled);
  executor.Open();
  // The late result is dropped: still exactly one answer.
  Answer next;
  loader.Load(Request({"2"}), next.Callback());
  next.done.WaitForNotification();
  EXPECT_EQ(running.calls.load(), 1);
}

// A query in flight is cancelled in PostgreSQL (its StatementCancel) once
// every caller of its batch is cancelled, not while one still waits; it
// counts as cancelled, not failed, and the queue goes on.
TEST_F(LoaderTest, QueryInFlightIsCancelledOnceEveryCallerOfItIs) {
  ScriptedExecutor executor(1);
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  executor.HoldTasks();
  Answer a, b;
  auto ticket_a = loader.Load(Request({"1"}), a.Callback());
  auto ticket_b = loader.Load(Request({"1", "2"}), b.Callback());
  executor.StartTasks();
  executor.AwaitFetches(1);
  ASSERT_THAT(executor.fetches(), ElementsAre(ElementsAre("1", "2")));

  loader.Cancel(ticket_a, absl::CancelledError("a went away"));
  EXPECT_FALSE(executor.FetchCancelled(0)) << "b still waits for it";
  loader.Cancel(ticket_b, absl::CancelledError("b went away"));
  EXPECT_TRUE(executor.FetchCancelled(0));
  EXPECT_EQ(loader.Stats().cancelled_queries, 1u);

  executor.Release(0, absl::CancelledError("cancelled in PostgreSQL"));
  executor.AwaitTasksReturned(1);
  EXPECT_EQ(loader.Stats().failed_queries, 0u);
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(b.calls.load(), 1);
  EXPECT_EQ(b.status.code(), absl::StatusCode::kCancelled);
  Answer next;
  loader.Load(Request({"5"}), next.Callback());
  executor.AwaitFetches(2);
  EXPECT_FALSE(executor.FetchCancelled(1));
  executor.Release(1);
  next.done.WaitForNotification();
  EXPECT_THAT(next.ids, ElementsAre(5));
}

// A failed query fails every caller of that batch; the next batch works.
TEST_F(LoaderTest, FailedQueryFailsItsBatchOnly) {
  GatedExecutor executor(1);
  executor.Close();
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer blocker;
  loader.Load(Request({"1"}), blocker.Callback());
  executor.AwaitFetches(1);
  Answer a, b;
  loader.Load(Request({"2"}), a.Callback());
  loader.Load(Request({"3"}), b.Callback());
  executor.FailNext();  // consumed by the running first query
  executor.Open();
  blocker.done.WaitForNotification();
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  EXPECT_EQ(blocker.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(a.status.ok());
  EXPECT_THAT(a.ids, ElementsAre(2));
  EXPECT_THAT(b.ids, ElementsAre(3));
  EXPECT_EQ(loader.Stats().failed_queries, 1u);
}

TEST_F(LoaderTest, RefusesBeyondThePendingBound) {
  GatedExecutor executor(1);
  executor.Close();
  Loader::Options options;
  options.max_pending_keys = 3;
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer in_flight, queued, refused;
  loader.Load(Request({"1", "2"}), in_flight.Callback());
  executor.AwaitFetches(1);  // sent: no longer pending
  loader.Load(Request({"3", "4", "5"}), queued.Callback());
  loader.Load(Request({"6"}), refused.Callback());
  ASSERT_TRUE(refused.done.HasBeenNotified());
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kResourceExhausted);
  executor.Open();
  queued.done.WaitForNotification();
  EXPECT_THAT(queued.ids, ElementsAre(3, 4, 5));
  in_flight.done.WaitForNotification();
  EXPECT_EQ(loader.Stats().rejected_overload, 1u);
}

TEST_F(LoaderTest, MergingOffSendsOneQueryPerRequest) {
  GatedExecutor executor(2);
  Loader::Options options;
  options.merge = false;
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);
  std::vector<std::unique_ptr<Answer>> answers;
  for (int i = 1; i <= 10; ++i) {
    answers.push_back(std::make_unique<Answer>());
    loader.Load(Request({absl::StrCat(i), absl::StrCat(i)}),
                answers.back()->Callback());
  }
  for (int i = 0; i < 10; ++i) {
    answers[i]->done.WaitForNotification();
    EXPECT_THAT(answers[i]->ids, ElementsAre(i + 1, i + 1));
  }
  EXPECT_EQ(executor.fetches().size(), 10u);
  EXPECT_EQ(loader.Stats().queries, 10u);
}

TEST_F(LoaderTest, MaxWaitHoldsABatchForMoreKeys) {
  GatedExecutor executor(1);
  Loader::Options options;
  options.max_wait = absl::Milliseconds(200);
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);
  Answer a, b;
  loader.Load(Request({"1"}), a.Callback());
  loader.Load(Request({"2"}), b.Callback());
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  EXPECT_THAT(executor.fetches(), ElementsAre(UnorderedElementsAre("1", "2")));
}

// Many threads times many calls, with cancellations mixed in: every caller
// is answered exactly once, with its own keys. (Run under TSAN: make tsan.)
TEST_F(LoaderTest, ConcurrentCallersEachGetTheirOwnKeysExactlyOnce) {
  GatedExecutor executor(4);
  Loader loader({}, executor);
  ExecutorStopsFirst stop_first(executor);
  constexpr int kThreads = 8, kCalls = 300;
  std::atomic<int> wrong{0}, answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        const int k1 = 1 + (t * 7 + c) % 120, k2 = 1 + (c * 13) % 100;
        auto answer = std::make_shared<Answer>();
        auto ticket = loader.Load(
            Request({absl::StrCat(k1), absl::StrCat(k2), absl::StrCat(k1)}),
            answer->Callback());
        if (c % 10 == 0) loader.Cancel(ticket, absl::CancelledError("x"));
        answer->done.WaitForNotification();
        ++answered;
        if (answer->status.ok()) {
          const int64_t e1 = k1 <= 100 ? k1 : -1;
          if (answer->ids != std::vector<int64_t>{e1, k2, e1}) ++wrong;
        } else if (c % 10 != 0) {
          ++wrong;
        }
        if (answer->calls.load() != 1) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(answered.load(), kThreads * kCalls);
  EXPECT_EQ(wrong.load(), 0);
}

// A lookup split over two batches, one failing and one succeeding, fails as a
// whole: its failed keys are never answered as "not found". The interleaving
// is forced: the failing batch's delivery is held (inside another waiter's
// callback) while the lookup's other batch succeeds.
TEST_F(LoaderTest, LookupSplitOverAFailedAndASucceedingBatchFails) {
  ScriptedExecutor executor(2);
  Loader::Options options;
  options.max_keys_per_query = 2;
  options.max_inflight_per_queue = 2;
  Loader loader(options, executor);
  ExecutorStopsFirst stop_first(executor);

  // Its callback holds the failing batch's delivery open.
  Latch first_entered, first_release;
  Answer first;
  LoadCallback first_callback = first.Callback();
  Answer split;
  executor.HoldTasks();  // both lookups wait before the first batch is taken
  loader.Load(Request({"1"}), [&](absl::StatusOr<LoadResult> result) {
    first_entered.Notify();
    first_release.WaitForNotification();
    std::move(first_callback)(std::move(result));
  });
  loader.Load(Request({"2", "3"}), split.Callback());
  executor.StartTasks();
  executor.AwaitFetches(2);  // on two connections, in either order
  const auto fetches = executor.fetches();
  ASSERT_THAT(fetches,
              UnorderedElementsAre(ElementsAre("1", "2"), ElementsAre("3")));
  const size_t failing = fetches[0].size() == 2 ? 0 : 1;

  executor.Release(failing, absl::UnavailableError("backend terminated"));
  first_entered.WaitForNotification();
  executor.Release(1 - failing);   // the split lookup's other batch succeeds
  executor.AwaitTasksReturned(1);  // and has delivered what it could
  first_release.Notify();

  split.done.WaitForNotification();
  first.done.WaitForNotification();
  EXPECT_EQ(first.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(split.status.code(), absl::StatusCode::kUnavailable)
      << "answered OK with ids " << ::testing::PrintToString(split.ids);
  EXPECT_EQ(split.calls.load(), 1);
}

}  // namespace
}  // namespace rowgate::loader
