// End-to-end: the loader (issue 3). Concurrent lookups are merged into few
// Postgres queries, counted both by Postgres (pg_stat_statements calls of
// exactly the loader's lookup statement, storage::LookupSql) and by
// AdminService.GetLoaderStats;
// and the loader survives a blocked table, short deadlines and terminated
// backends.
#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::rowgate::testing::TestDatabaseUrl;
using ::testing::Gt;
using ::testing::Lt;
using ::testing::SizeIs;

constexpr int kCallers = 200;

// Times PostgreSQL ran the loader's lookup of users by id: that statement
// exactly, not Delete's or Page's (which may also contain "= ANY").
long long LookupCalls() {
  static const std::string* const lookup =
      new std::string(LookupStatement("users"));
  EXPECT_FALSE(lookup->empty());
  return StatementCallsExactly(*lookup);
}

// Users made for the loader tests: ids[i] has email emails[i].
struct LoaderUsers {
  std::vector<int64_t> ids;
  std::vector<std::string> emails;
};

LoaderUsers InsertLoaderUsers(int count) {
  const std::string domain = UniqueTag("loader") + ".test";
  LoaderUsers users;
  for (const auto& row : ExecSql(absl::StrCat(
           "INSERT INTO users (name, email) SELECT 'loader', g || '@' || ",
           SqlQuote(domain), " FROM generate_series(1, ", count,
           ") g RETURNING id, email"))) {
    users.ids.push_back(std::stoll(row.at(0)));
    users.emails.push_back(row.at(1));
  }
  return users;
}

// One asynchronous BatchGet for one key, answered on a gRPC thread.
struct PendingCall {
  grpc::ClientContext context;
  v1::BatchGetRequest request;
  v1::BatchGetResponse response;
  grpc::Status status;
};

// Starts a BatchGet of users[key] per element of `keys` at once (callback
// API, no waiting between them) and waits (blocks) for all answers.
std::vector<std::unique_ptr<PendingCall>> CallConcurrently(
    v1::DataService::Stub* stub, const std::vector<int64_t>& keys,
    absl::Duration timeout = absl::Seconds(20)) {
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (int64_t key : keys) {
    auto call = std::make_unique<PendingCall>();
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    call->request = BatchGetRequest("users", {Int(key)});
    calls.push_back(std::move(call));
  }
  absl::BlockingCounter done(static_cast<int>(calls.size()));
  for (auto& call : calls) {
    PendingCall* c = call.get();
    stub->async()->BatchGet(&c->context, &c->request, &c->response,
                            [c, &done](grpc::Status status) {
                              c->status = std::move(status);
                              done.DecrementCount();
                            });
  }
  done.Wait();
  return calls;
}

// Each call answered OK with exactly the row of its key.
void ExpectEachAnsweredRight(
    const std::vector<std::unique_ptr<PendingCall>>& calls,
    const LoaderUsers& users) {
  for (size_t i = 0; i < calls.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("call ", i));
    const PendingCall& call = *calls[i];
    ASSERT_THAT(call.status, IsOk());
    ASSERT_THAT(call.response.results(), SizeIs(1));
    ASSERT_THAT(call.response.results(0).rows(), SizeIs(1));
    const v1::Row& row = call.response.results(0).rows(0);
    EXPECT_EQ(IdOf(row), users.ids[i]);
    EXPECT_EQ(Field(row, "email").string_value(), users.emails[i]);
  }
}

// Waits (up to 2 s) until GetLoaderStats' `queries` has moved by `delta`
// from `before` (the loader may count a query just after answering it),
// then returns the stats.
v1::LoaderStats StatsAfter(Client& client, const v1::LoaderStats& before,
                           uint64_t delta) {
  v1::LoaderStats stats = client.MustGetLoaderStats();
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (stats.queries() - before.queries() < delta && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    stats = client.MustGetLoaderStats();
  }
  return stats;
}

class LoaderTest : public SharedServerTest<LoaderTest> {
 public:
  static void SetUpTestSuite() {
    SharedServerTest::SetUpTestSuite();
    users_ = new LoaderUsers(InsertLoaderUsers(kCallers));
  }
  static void TearDownTestSuite() {
    delete users_;
    users_ = nullptr;
    SharedServerTest::TearDownTestSuite();
  }

 protected:
  static inline LoaderUsers* users_ = nullptr;
};

// 200 concurrent callers, one key each: every caller gets its row, from a
// small number of queries; Postgres and the loader's stats agree on it.
TEST_F(LoaderTest, ConcurrentCallersAreMergedIntoFewQueries) {
  ASSERT_THAT(users_->ids, SizeIs(kCallers));
  const v1::LoaderStats before = client().MustGetLoaderStats();
  const long long pg_before = LookupCalls();

  auto calls = CallConcurrently(client().data(), users_->ids);
  ExpectEachAnsweredRight(calls, *users_);

  const long long pg_queries = LookupCalls() - pg_before;
  const v1::LoaderStats after = StatsAfter(client(), before, pg_queries);
  const uint64_t queries = after.queries() - before.queries();
  std::cout << "[ loader   ] " << kCallers << " concurrent callers -> "
            << pg_queries << " Postgres queries, loader stats " << queries
            << std::endl;
  RecordProperty("postgres_queries", static_cast<int>(pg_queries));
  EXPECT_THAT(pg_queries, Gt(0));
  EXPECT_THAT(pg_queries, Lt(100));
  EXPECT_EQ(queries, static_cast<uint64_t>(pg_queries));
  EXPECT_EQ(after.requests() - before.requests(), uint64_t{kCallers});
  EXPECT_EQ(after.keys() - before.keys(), uint64_t{kCallers});
  EXPECT_EQ(after.keys_queried() - before.keys_queried(), uint64_t{kCallers});
}

// The notebook's [1, 2, 3, 4, 4]: one query for four distinct keys. A
// Delete and an IN-filtered Page in the same window (their statements hold
// "= ANY" too) are not counted as lookups.
TEST_F(LoaderTest, KeysOfOneCallAreDedupedIntoOneQuery) {
  const v1::LoaderStats before = client().MustGetLoaderStats();
  const long long pg_before = LookupCalls();
  v1::BatchGetResponse response;
  ASSERT_THAT(client().BatchGet(BatchGetRequest("users", Ints({1, 2, 3, 4, 4})),
                                &response),
              IsOk());
  ASSERT_THAT(response.results(), SizeIs(5));
  v1::DeleteRequest remove;
  remove.set_entity("users");
  *remove.add_keys() = Int(NextSequenceValue());  // never used: deletes none
  v1::DeleteResponse removed;
  ASSERT_THAT(client().Delete(remove, &removed), IsOk());
  v1::PageRequest page;
  page.set_entity("users");
  *page.add_filters() = InFilter("id", Ints({1, 2}));
  v1::PageResponse paged;
  ASSERT_THAT(client().Page(page, &paged), IsOk());
  const v1::LoaderStats after = StatsAfter(client(), before, 1);
  EXPECT_EQ(after.queries() - before.queries(), 1u);
  EXPECT_EQ(after.keys_queried() - before.keys_queried(), 4u);
  EXPECT_EQ(after.keys() - before.keys(), 5u);
  EXPECT_EQ(after.requests() - before.requests(), 1u);
  EXPECT_EQ(LookupCalls() - pg_before, 1);
}

// Unary calls and stream messages at the same time are all answered right.
TEST_F(LoaderTest, MixedUnaryAndStreamCallsAreAllAnsweredRight) {
  const int half = kCallers / 2;
  LoaderUsers unary_users{
      {users_->ids.begin(), users_->ids.begin() + half},
      {users_->emails.begin(), users_->emails.begin() + half}};
  std::vector<std::unique_ptr<PendingCall>> unary_calls;
  std::map<uint64_t, v1::StreamBatchGetResponse> stream_answers;
  grpc::Status stream_status;

  // The stream runs on a thread of its own while the unary calls go out:
  // all its requests are written first, so they are in flight together.
  std::thread streamer([&] {
    auto context = NewContext(absl::Seconds(20));
    auto stream = client().data()->StreamBatchGet(context.get());
    for (int i = half; i < kCallers; ++i) {
      v1::StreamBatchGetRequest request;
      request.set_tag(i);
      *request.mutable_request() =
          BatchGetRequest("users", {Int(users_->ids[i])});
      if (!stream->Write(request)) break;
    }
    v1::StreamBatchGetResponse answer;
    for (int i = half; i < kCallers && stream->Read(&answer); ++i) {
      stream_answers[answer.tag()] = answer;
    }
    stream->WritesDone();
    while (stream->Read(&answer)) stream_answers[answer.tag()] = answer;
    stream_status = stream->Finish();
  });
  unary_calls = CallConcurrently(
      client().data(), {users_->ids.begin(), users_->ids.begin() + half});
  streamer.join();

  ExpectEachAnsweredRight(unary_calls, unary_users);
  EXPECT_THAT(stream_status, IsOk());
  ASSERT_THAT(stream_answers, SizeIs(kCallers - half));
  for (int i = half; i < kCallers; ++i) {
    SCOPED_TRACE(absl::StrCat("stream request ", i));
    const v1::StreamBatchGetResponse& answer = stream_answers[i];
    ASSERT_TRUE(answer.has_response()) << answer.ShortDebugString();
    ASSERT_THAT(answer.response().results(), SizeIs(1));
    ASSERT_THAT(answer.response().results(0).rows(), SizeIs(1));
    const v1::Row& row = answer.response().results(0).rows(0);
    EXPECT_EQ(IdOf(row), users_->ids[i]);
    EXPECT_EQ(Field(row, "email").string_value(), users_->emails[i]);
  }
}

// With --loader_merge=false every request is a query of its own.
TEST(LoaderNoMergeTest, EveryCallerIsOneQuery) {
  auto server = RowgateProcess::Start({"--loader_merge=false"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  const LoaderUsers users = InsertLoaderUsers(kCallers);
  const v1::LoaderStats before = client.MustGetLoaderStats();
  const long long pg_before = LookupCalls();

  auto calls = CallConcurrently(client.data(), users.ids);
  ExpectEachAnsweredRight(calls, users);

  const long long pg_queries = LookupCalls() - pg_before;
  const v1::LoaderStats after = StatsAfter(client, before, kCallers);
  std::cout << "[ loader   ] --loader_merge=false: " << kCallers
            << " callers -> " << pg_queries << " Postgres queries" << std::endl;
  ::testing::Test::RecordProperty("postgres_queries",
                                  static_cast<int>(pg_queries));
  EXPECT_EQ(pg_queries, kCallers);
  EXPECT_EQ(after.queries() - before.queries(), uint64_t{kCallers});
}

// ---------------------------------------------------------------- failures

// Holds ACCESS EXCLUSIVE locks on `tables` in an open transaction, so every
// query on them waits, until Release() or destruction.
class TableLock {
 public:
  explicit TableLock(const std::string& tables)
      : connection_(TestDatabaseUrl()), transaction_(connection_) {
    transaction_.exec("LOCK TABLE " + tables + " IN ACCESS EXCLUSIVE MODE");
  }
  ~TableLock() { Release(); }
  void Release() {
    if (!released_) transaction_.abort();
    released_ = true;
  }

 private:
  pqxx::connection connection_;
  pqxx::work transaction_;
  bool released_ = false;
};

// rowgate's backends (application_name 'rowgate') waiting for a lock.
int RowgateBackendsWaitingOnLock() {
  return std::stoi(
      ExecSql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
              "current_database() AND application_name = 'rowgate' "
              "AND wait_event_type = 'Lock'")
          .at(0)
          .at(0));
}

// Waits (up to 10 s) for `count` rowgate backends to wait on a lock.
bool AwaitBackendsWaitingOnLock(int count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (RowgateBackendsWaitingOnLock() >= count) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// One BatchGet started in the background, with its own deadline.
class BackgroundCall {
 public:
  BackgroundCall(v1::DataService::Stub* stub, v1::BatchGetRequest request,
                 absl::Duration timeout)
      : request_(std::move(request)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    stub->async()->BatchGet(&context_, &request_, &response_,
                            [this](grpc::Status status) {
                              status_ = std::move(status);
                              done_.Notify();
                            });
  }
  ~BackgroundCall() {
    context_.TryCancel();
    done_.WaitForNotification();
  }
  // Blocks up to `timeout`; false if the call has not ended by then.
  bool Wait(absl::Duration timeout) {
    return done_.WaitForNotificationWithTimeout(timeout);
  }
  const grpc::Status& status() const { return status_; }
  const v1::BatchGetResponse& response() const { return response_; }

 private:
  grpc::ClientContext context_;
  v1::BatchGetRequest request_;
  v1::BatchGetResponse response_;
  grpc::Status status_;
  absl::Notification done_;
};

// With the only pooled connection stuck behind a lock, short deadlines end
// calls promptly; once the lock is gone the stuck call and new ones succeed.
TEST(LoaderFailureTest, ShortDeadlineEndsPromptlyWhileQueryIsBlocked) {
  auto server = RowgateProcess::Start({"--pool_size=1"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  auto lock = std::make_unique<TableLock>("users");
  BackgroundCall blocked(client.data(), BatchGetRequest("users", Ints({1})),
                         absl::Seconds(20));
  ASSERT_TRUE(AwaitBackendsWaitingOnLock(1))
      << "no rowgate backend (application_name 'rowgate') waits on the lock";

  for (absl::Duration timeout :
       {absl::Milliseconds(1), absl::Milliseconds(300)}) {
    SCOPED_TRACE(absl::StrCat("deadline ", absl::FormatDuration(timeout)));
    auto context = NewContext(timeout);
    v1::BatchGetResponse response;
    const absl::Time start = absl::Now();
    grpc::Status status = client.data()->BatchGet(
        context.get(), BatchGetRequest("users", Ints({2})), &response);
    EXPECT_THAT(status, StatusIs(grpc::StatusCode::DEADLINE_EXCEEDED));
    EXPECT_LT(absl::Now() - start, timeout + absl::Seconds(2));
  }

  lock->Release();
  ASSERT_TRUE(blocked.Wait(absl::Seconds(15)));
  EXPECT_THAT(blocked.status(), IsOk());
  ASSERT_THAT(blocked.response().results(), SizeIs(1));
  ASSERT_THAT(blocked.response().results(0).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(blocked.response().results(0).rows(0)), 1);

  v1::BatchGetResponse response;
  ASSERT_THAT(
      client.BatchGet(BatchGetRequest("users", Ints({2, 3})), &response),
      IsOk());
  ASSERT_THAT(response.results(), SizeIs(2));
  ASSERT_THAT(response.results(1).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(response.results(1).rows(0)), 3);
  const v1::LoaderStats stats = client.MustGetLoaderStats();
  std::cout << "[ loader   ] after deadlines: " << stats.ShortDebugString()
            << std::endl;
}

// Backends terminated while their lookups wait behind a lock: the waiting
// callers get UNAVAILABLE, and the next lookups succeed on new connections.
TEST(LoaderFailureTest, TerminatedBackendsFailWaitingCallersThenRecover) {
  auto server = RowgateProcess::Start({"--pool_size=4"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  // Lookups on three entities cannot share a query: three queries, each on
  // a connection of its own, all waiting.
  auto lock = std::make_unique<TableLock>("users, groups, grouptypes");
  std::vector<std::unique_ptr<BackgroundCall>> waiting;
  waiting.push_back(std::make_unique<BackgroundCall>(
      client.data(), BatchGetRequest("users", Ints({1})), absl::Seconds(20)));
  waiting.push_back(std::make_unique<BackgroundCall>(
      client.data(), BatchGetRequest("groups", Ints({13})), absl::Seconds(20)));
  waiting.push_back(std::make_unique<BackgroundCall>(
      client.data(), BatchGetRequest("grouptypes", Ints({11})),
      absl::Seconds(20)));
  ASSERT_TRUE(AwaitBackendsWaitingOnLock(3))
      << "expected 3 rowgate backends (application_name 'rowgate') waiting "
         "on the lock, saw "
      << RowgateBackendsWaitingOnLock();

  const auto terminated = ExecSql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
      "current_database() AND pid <> pg_backend_pid() AND application_name = "
      "'rowgate'");
  EXPECT_GE(terminated.size(), 3u);
  for (size_t i = 0; i < waiting.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("waiting call ", i));
    ASSERT_TRUE(waiting[i]->Wait(absl::Seconds(15)))
        << "the caller was not answered after its backend was terminated";
    EXPECT_THAT(waiting[i]->status(), StatusIs(grpc::StatusCode::UNAVAILABLE));
  }
  lock->Release();

  v1::BatchGetResponse response;
  ASSERT_THAT(
      client.BatchGet(BatchGetRequest("users", Ints({1, 2})), &response),
      IsOk());
  ASSERT_THAT(response.results(), SizeIs(2));
  ASSERT_THAT(response.results(0).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(response.results(0).rows(0)), 1);
  ASSERT_THAT(client.BatchGet(BatchGetRequest("groups", Ints({13})), &response),
              IsOk());
  ASSERT_THAT(response.results(0).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(response.results(0).rows(0)), 13);
}

}  // namespace
}  // namespace rowgate::e2e
