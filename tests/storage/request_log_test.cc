// RequestLog against the real PostgreSQL: the id and the write commit or
// vanish together, a retry gets the stored answer without writing, a
// different request under a used id is refused, the connection is back in
// autocommit after every path, concurrent creators of the table do not
// fail, and the purge is bounded and oldest first.
// Uses its own schema, request_log_test (for the log and a table to write).
#include "storage/request_log.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "storage/connection.h"
#include "tests/common/test_database.h"

namespace rowgate::storage {
namespace {

using rowgate::testing::ExecSql;
using rowgate::testing::TestDatabaseUrl;

constexpr char kSchema[] = "request_log_test";

int64_t Count(const std::string& from_where) {
  return std::stoll(ExecSql("SELECT count(*) FROM " + from_where).at(0).at(0));
}

class RequestLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ExecSql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
    conn_ = std::make_unique<Connection>(TestDatabaseUrl());
    ASSERT_TRUE(log_.EnsureTable(*conn_).ok());
    ExecSql(absl::StrCat("CREATE TABLE ", kSchema,
                         ".notes (id bigserial PRIMARY KEY, note text)"));
  }
  void TearDown() override {
    ExecSql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
  }

  // A write that inserts `note` and answers "wrote <note>".
  static absl::StatusOr<std::string> WriteNote(Connection& conn,
                                               const std::string& note) {
    absl::StatusOr<QueryResult> r = conn.Execute(
        "INSERT INTO request_log_test.notes (note) VALUES ($1::text)", {note});
    if (!r.ok()) return r.status();
    return "wrote " + note;
  }

  int64_t Notes(const std::string& note) {
    return Count(absl::StrCat(kSchema, ".notes WHERE note = '", note, "'"));
  }
  int64_t LoggedIds(const std::string& id) {
    return Count(
        absl::StrCat(kSchema, ".request_log WHERE request_id = '", id, "'"));
  }

  RequestLog log_{kSchema};
  std::unique_ptr<Connection> conn_;
};

TEST_F(RequestLogTest, RetryReturnsStoredAnswerWithoutWriting) {
  int writes = 0;
  auto write = [&](Connection& c) {
    ++writes;
    return WriteNote(c, "a");
  };
  auto first = log_.Run(*conn_, "id-1", "Insert", "request", write);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed);
  EXPECT_EQ(first->response, "wrote a");
  auto retry = log_.Run(*conn_, "id-1", "Insert", "request", write);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->response, "wrote a");
  EXPECT_EQ(writes, 1);
  EXPECT_EQ(Notes("a"), 1);
  EXPECT_EQ(LoggedIds("id-1"), 1);
}

// Binary answers (any byte, NUL included) come back exactly.
TEST_F(RequestLogTest, StoredAnswerKeepsEveryByte) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  auto write = [&](Connection&) -> absl::StatusOr<std::string> {
    return bytes;
  };
  ASSERT_TRUE(log_.Run(*conn_, "bin", "Insert", "r", write).ok());
  auto retry = log_.Run(*conn_, "bin", "Insert", "r", write);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->response, bytes);
}

TEST_F(RequestLogTest, SameIdForDifferentRequestOrMethodIsRefused) {
  auto write_a = [&](Connection& c) { return WriteNote(c, "a"); };
  auto write_b = [&](Connection& c) { return WriteNote(c, "b"); };
  ASSERT_TRUE(log_.Run(*conn_, "id-2", "Insert", "request a", write_a).ok());
  auto other = log_.Run(*conn_, "id-2", "Insert", "request b", write_b);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(other.status().message(),
            "request_id \"id-2\" was already used for a different request "
            "(Insert); a new write needs a new request_id");
  auto method = log_.Run(*conn_, "id-2", "Delete", "request a", write_b);
  EXPECT_EQ(method.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Notes("b"), 0);
  EXPECT_EQ(Notes("a"), 1);
}

// A failed write records nothing and leaves nothing written: the retry runs.
TEST_F(RequestLogTest, FailedWriteRecordsNothing) {
  auto failing = [&](Connection& c) -> absl::StatusOr<std::string> {
    if (auto w = WriteNote(c, "half"); !w.ok()) return w.status();
    return absl::AbortedError("stale version");
  };
  auto failed = log_.Run(*conn_, "id-3", "Update", "r", failing);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Notes("half"), 0);
  EXPECT_EQ(LoggedIds("id-3"), 0);
  auto retry = log_.Run(*conn_, "id-3", "Update", "r",
                        [&](Connection& c) { return WriteNote(c, "whole"); });
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_FALSE(retry->replayed);
  EXPECT_EQ(Notes("whole"), 1);
}

// An SQL error inside the transaction (here a bad cast) rolls it back; the
// connection is in autocommit again: its next plain statement is visible to
// another session at once.
TEST_F(RequestLogTest, ConnectionIsInAutocommitAfterEveryPath) {
  auto bad = [&](Connection& c) -> absl::StatusOr<std::string> {
    absl::StatusOr<QueryResult> r = c.Execute("SELECT 'x'::int", {});
    if (!r.ok()) return r.status();
    return "unreachable";
  };
  EXPECT_EQ(log_.Run(*conn_, "id-4", "Insert", "r", bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteNote(*conn_, "after error").ok());
  EXPECT_EQ(Notes("after error"), 1);

  ASSERT_TRUE(log_.Run(*conn_, "id-5", "Insert", "r",
                       [&](Connection& c) { return WriteNote(c, "x"); })
                  .ok());
  ASSERT_TRUE(WriteNote(*conn_, "after commit").ok());
  EXPECT_EQ(Notes("after commit"), 1);

  ASSERT_TRUE(log_.Run(*conn_, "id-5", "Insert", "r",
                       [&](Connection& c) { return WriteNote(c, "x"); })
                  .ok());
  ASSERT_TRUE(WriteNote(*conn_, "after replay").ok());
  EXPECT_EQ(Notes("after replay"), 1);
}

// The caller's deadline passes after the write: COMMIT is not sent, the
// ROLLBACK still is (it ignores the deadline), nothing stays written.
TEST_F(RequestLogTest, DeadlinePassingBeforeCommitRollsBack) {
  auto write = [&](Connection& c) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> w = WriteNote(c, "late");
    c.set_deadline(absl::Now() - absl::Seconds(1));
    return w;
  };
  auto late = log_.Run(*conn_, "id-6", "Insert", "r", write);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  conn_->set_deadline(absl::InfiniteFuture());
  EXPECT_EQ(Notes("late"), 0);
  EXPECT_EQ(LoggedIds("id-6"), 0);
  ASSERT_TRUE(WriteNote(*conn_, "after deadline").ok());
  EXPECT_EQ(Notes("after deadline"), 1);
}

TEST_F(RequestLogTest, RequestIdIsBounded) {
  EXPECT_TRUE(RequestLog::CheckRequestId("").ok());
  EXPECT_TRUE(RequestLog::CheckRequestId(std::string(128, 'x')).ok());
  absl::Status long_id = RequestLog::CheckRequestId(std::string(129, 'x'));
  EXPECT_EQ(long_id.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(long_id.message(),
            "request_id has 129 bytes; at most 128 are allowed");
  EXPECT_EQ(RequestLog::CheckRequestId(std::string("a\0b", 3)).code(),
            absl::StatusCode::kInvalidArgument);
}

// Several processes starting at once all create the table: none fails on
// the duplicate-object race of CREATE ... IF NOT EXISTS.
TEST_F(RequestLogTest, ConcurrentCreatorsAllSucceed) {
  constexpr int kThreads = 6;
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    ExecSql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
    std::vector<std::unique_ptr<Connection>> conns;
    for (int i = 0; i < kThreads; ++i) {
      conns.push_back(std::make_unique<Connection>(TestDatabaseUrl()));
      ASSERT_TRUE(conns.back()->EnsureConnected().ok());
    }
    absl::Barrier barrier(kThreads);
    std::vector<absl::Status> results(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        barrier.Block();
        results[i] = log_.EnsureTable(*conns[i]);
      });
    }
    for (std::thread& t : threads) t.join();
    for (int i = 0; i < kThreads; ++i) {
      EXPECT_TRUE(results[i].ok()) << "round " << round << ": " << results[i];
    }
  }
  EXPECT_EQ(Count(absl::StrCat(kSchema, ".request_log")), 0);
}

// A user who may not create the schema gets FAILED_PRECONDITION naming the
// grants, in one line (not PostgreSQL's statement excerpt).
TEST_F(RequestLogTest, EnsureTableWithoutPrivilegeNamesTheGrants) {
  ExecSql(absl::StrCat(
      "DROP SCHEMA ", kSchema, " CASCADE; ",
      "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
      "'idem_limited') THEN CREATE ROLE idem_limited LOGIN; END IF; END $$"));
  std::string url = TestDatabaseUrl();
  const size_t at = url.find("postgres@");
  ASSERT_NE(at, std::string::npos) << "unexpected test database URL form";
  url.replace(at, std::string("postgres@").size(), "idem_limited@");
  Connection limited(url);
  const absl::Status status = log_.EnsureTable(limited);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(std::string(status.message()),
            "cannot create request_log_test.request_log (PostgreSQL: "
            "permission denied for database rowgate_test (SQLSTATE 42501)); "
            "writes with a request_id are refused until it exists: GRANT "
            "CREATE ON DATABASE \"rowgate_test\" TO \"idem_limited\", or "
            "create it as an owner (README, Idempotent writes) and GRANT "
            "USAGE ON SCHEMA request_log_test TO \"idem_limited\"; GRANT "
            "SELECT, INSERT, UPDATE, DELETE ON request_log_test.request_log "
            "TO \"idem_limited\"");
}

TEST_F(RequestLogTest, PurgeDeletesOnlyExpiredIdsOldestFirstInBoundedBatches) {
  ExecSql(absl::StrCat(
      "INSERT INTO ", kSchema,
      ".request_log (request_id, method, fingerprint, response, created_at) "
      "SELECT 'old' || i, 'Insert', '\\x00', '\\x00', now() - interval '1 "
      "hour' - i * interval '1 minute' FROM generate_series(1, 5) i; "
      "INSERT INTO ",
      kSchema,
      ".request_log (request_id, method, fingerprint, response) VALUES "
      "('fresh', 'Insert', '\\x00', '\\x00')"));
  auto purged = log_.PurgeExpired(*conn_, absl::Minutes(30), 2);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 2);
  // The two oldest (old5, old4) went first.
  EXPECT_EQ(LoggedIds("old5") + LoggedIds("old4"), 0);
  EXPECT_EQ(LoggedIds("old3"), 1);
  purged = log_.PurgeExpired(*conn_, absl::Minutes(30), 10);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 3);
  EXPECT_EQ(LoggedIds("fresh"), 1);
}

// The background purger works off a backlog larger than its batch.
TEST_F(RequestLogTest, PurgerRemovesBacklogInBatches) {
  ExecSql(absl::StrCat(
      "INSERT INTO ", kSchema,
      ".request_log (request_id, method, fingerprint, created_at) "
      "SELECT 'old' || i, 'Insert', '\\x00', now() - interval '1 hour' "
      "FROM generate_series(1, 25) i"));
  RequestLogPurger purger(log_, {.database_url = TestDatabaseUrl(),
                                 .retention = absl::Minutes(1),
                                 .interval = absl::Milliseconds(100),
                                 .batch = 10});
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (purger.purged() < 25 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(purger.purged(), 25u);
  EXPECT_EQ(Count(absl::StrCat(kSchema, ".request_log")), 0);
}

}  // namespace
}  // namespace rowgate::storage
