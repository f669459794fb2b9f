// End-to-end: idempotent writes. Insert, Update and Delete with a
// request_id against the real rowgate and PostgreSQL: a retry returns the
// first answer and changes nothing more (also after a SIGKILL of rowgate
// and a new one on the same database), a reused id with a different
// request is refused, a failed write records nothing, concurrent calls with
// one new id write once, and an expired id is purged.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::rowgate::testing::ExecSql;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

int64_t SqlCount(const std::string& from_where) {
  return std::stoll(ExecSql("SELECT count(*) FROM " + from_where).at(0).at(0));
}

// Users whose email is "<tag>@idem.test".
int64_t UsersTagged(const std::string& tag) {
  return SqlCount(
      absl::StrCat("users WHERE email = ", SqlQuote(tag + "@idem.test")));
}

// Rows of rowgate's request log for `request_id`.
int64_t Logged(const std::string& request_id) {
  return SqlCount(absl::StrCat("rowgate.request_log WHERE request_id = ",
                               SqlQuote(request_id)));
}

int64_t SqlLastchangeMicros(int64_t id) {
  return std::stoll(
      ExecSql(absl::StrCat("SELECT (extract(epoch FROM lastchange) * "
                           "1000000)::bigint FROM users WHERE id = ",
                           id))
          .at(0)
          .at(0));
}

v1::InsertRequest InsertUser(const std::string& tag,
                             const std::string& request_id,
                             const std::string& name = "Idem") {
  v1::InsertRequest request;
  request.set_entity("users");
  *request.add_rows() = MakeRow(
      {{"name", Str(name)}, {"email", Str(absl::StrCat(tag, "@idem.test"))}});
  request.set_request_id(request_id);
  return request;
}

v1::UpdateRequest RenameUser(const v1::Row& stored, const std::string& name,
                             const std::string& request_id) {
  v1::UpdateRequest request;
  request.set_entity("users");
  *request.mutable_row() =
      MakeRow({{"id", Field(stored, "id")},
               {"name", Str(name)},
               {"lastchange", Field(stored, "lastchange")}});
  request.set_request_id(request_id);
  return request;
}

// The request ids of this process run, distinct from earlier runs' (the
// log outlives a test database only if someone keeps it; be safe anyway).
std::string NewRequestId(const std::string& what) {
  return UniqueTag(absl::StrCat("req-", what));
}

class IdempotencyTest : public SharedServerTest<IdempotencyTest> {};

TEST_F(IdempotencyTest, InsertRetryReturnsFirstAnswerAndInsertsOnce) {
  const std::string tag = UniqueTag("ins");
  const v1::InsertRequest request = InsertUser(tag, NewRequestId("ins"));
  v1::InsertResponse first, retry;
  ASSERT_THAT(client().Insert(request, &first), IsOk());
  ASSERT_THAT(first.rows(), SizeIs(1));
  ASSERT_THAT(client().Insert(request, &retry), IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(first, retry))
      << "first: " << first.ShortDebugString()
      << "\nretry: " << retry.ShortDebugString();
  EXPECT_EQ(UsersTagged(tag), 1);
  EXPECT_EQ(Logged(request.request_id()), 1);
}

// The retry of an Update answers the first update's row and leaves the
// stored version alone (without the log it would be ABORTED: stale).
TEST_F(IdempotencyTest, UpdateRetryReturnsFirstAnswerAndUpdatesOnce) {
  const v1::Row stored = client().MustInsert(
      "users", {InsertUser(UniqueTag("upd"), "").rows(0)})[0];
  const v1::UpdateRequest request =
      RenameUser(stored, "Renamed", NewRequestId("upd"));
  v1::UpdateResponse first, retry;
  ASSERT_THAT(client().Update(request, &first), IsOk());
  const int64_t version = SqlLastchangeMicros(IdOf(stored));
  EXPECT_EQ(Micros(Field(first.row(), "lastchange").timestamp_value()),
            version);
  ASSERT_THAT(client().Update(request, &retry), IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(first, retry))
      << "first: " << first.ShortDebugString()
      << "\nretry: " << retry.ShortDebugString();
  EXPECT_EQ(SqlLastchangeMicros(IdOf(stored)), version);
  EXPECT_EQ(
      Field(client().MustGet("users", IdOf(stored)), "name").string_value(),
      "Renamed");
}

// The retry of a Delete answers the keys the first one deleted (without
// the log it would answer none: they are gone).
TEST_F(IdempotencyTest, DeleteRetryReturnsFirstAnswer) {
  const std::string tag = UniqueTag("del");
  std::vector<v1::Row> rows = client().MustInsert(
      "users",
      {InsertUser(tag, "").rows(0), InsertUser(tag + "b", "").rows(0)});
  ASSERT_THAT(rows, SizeIs(2));
  v1::DeleteRequest request;
  request.set_entity("users");
  *request.add_keys() = Int(IdOf(rows[0]));
  *request.add_keys() = Int(IdOf(rows[1]));
  request.set_request_id(NewRequestId("del"));
  v1::DeleteResponse first, retry;
  ASSERT_THAT(client().Delete(request, &first), IsOk());
  ASSERT_THAT(first.deleted_keys(), SizeIs(2));
  ASSERT_THAT(client().Delete(request, &retry), IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(first, retry))
      << "first: " << first.ShortDebugString()
      << "\nretry: " << retry.ShortDebugString();
  EXPECT_EQ(UsersTagged(tag) + UsersTagged(tag + "b"), 0);
}

// One id, another request (or another RPC): FAILED_PRECONDITION naming the
// id, and the database is unchanged.
TEST_F(IdempotencyTest, SameIdWithDifferentRequestIsRefused) {
  const std::string id = NewRequestId("reuse");
  const std::string tag = UniqueTag("reuse");
  v1::InsertResponse first;
  ASSERT_THAT(client().Insert(InsertUser(tag, id), &first), IsOk());

  v1::InsertResponse other;
  EXPECT_THAT(
      client().Insert(InsertUser(tag + "x", id), &other),
      StatusIs(grpc::StatusCode::FAILED_PRECONDITION,
               HasSubstr(absl::StrCat("request_id \"", id,
                                      "\" was already used for a different "
                                      "request (Insert)"))));
  EXPECT_EQ(UsersTagged(tag + "x"), 0);

  v1::DeleteRequest remove;
  remove.set_entity("users");
  *remove.add_keys() = Int(IdOf(first.rows(0)));
  remove.set_request_id(id);
  v1::DeleteResponse removed;
  EXPECT_THAT(client().Delete(remove, &removed),
              StatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                       HasSubstr("already used for a different request")));
  EXPECT_EQ(UsersTagged(tag), 1);
  EXPECT_EQ(Logged(id), 1);
}

// A write that fails records nothing: the id is free, and the corrected
// request under the same id runs (and is then answered from the log).
TEST_F(IdempotencyTest, FailedWriteRecordsNothing) {
  const v1::Row stored = client().MustInsert(
      "users", {InsertUser(UniqueTag("fail"), "").rows(0)})[0];
  const std::string id = NewRequestId("stale");
  v1::Row stale_row = stored;
  google::protobuf::Timestamp old =
      Field(stored, "lastchange").timestamp_value();
  old.set_seconds(old.seconds() - 60);
  v1::UpdateRequest stale = RenameUser(stored, "Stale", id);
  *(*stale.mutable_row()->mutable_fields())["lastchange"]
       .mutable_timestamp_value() = old;
  v1::UpdateResponse response;
  EXPECT_THAT(client().Update(stale, &response),
              StatusIs(grpc::StatusCode::ABORTED));
  EXPECT_EQ(Logged(id), 0);

  const v1::UpdateRequest fixed = RenameUser(stored, "Fixed", id);
  v1::UpdateResponse first, retry;
  ASSERT_THAT(client().Update(fixed, &first), IsOk());
  EXPECT_EQ(Field(first.row(), "name").string_value(), "Fixed");
  ASSERT_THAT(client().Update(fixed, &retry), IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(first, retry));
  EXPECT_EQ(Logged(id), 1);

  // A constraint violation (duplicate primary key) likewise.
  const std::string insert_id = NewRequestId("dup");
  const std::string tag = UniqueTag("dup");
  v1::InsertRequest duplicate = InsertUser(tag, insert_id);
  (*duplicate.mutable_rows(0)->mutable_fields())["id"] = Field(stored, "id");
  v1::InsertResponse inserted;
  EXPECT_THAT(client().Insert(duplicate, &inserted),
              StatusIs(grpc::StatusCode::ALREADY_EXISTS));
  EXPECT_EQ(Logged(insert_id), 0);
  ASSERT_THAT(client().Insert(InsertUser(tag, insert_id), &inserted), IsOk());
  EXPECT_EQ(UsersTagged(tag), 1);
}

TEST_F(IdempotencyTest, RequestIdIsBoundedInLength) {
  const std::string tag = UniqueTag("long");
  v1::InsertResponse response;
  EXPECT_THAT(
      client().Insert(InsertUser(tag, std::string(129, 'x')), &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               HasSubstr("request_id has 129 bytes; at most 128")));
  EXPECT_EQ(UsersTagged(tag), 0);
  const std::string longest = NewRequestId("l") + std::string(100, 'y');
  ASSERT_LE(longest.size(), 128u);
  EXPECT_THAT(client().Insert(InsertUser(tag, longest), &response), IsOk());
  EXPECT_EQ(UsersTagged(tag), 1);
}

// Without a request_id nothing is logged and a repeat writes again (the
// behaviour clients had before request ids).
TEST_F(IdempotencyTest, WriteWithoutRequestIdIsNotDeduplicated) {
  const std::string tag = UniqueTag("plain");
  const int64_t logged = SqlCount("rowgate.request_log");
  v1::InsertResponse response;
  ASSERT_THAT(client().Insert(InsertUser(tag, ""), &response), IsOk());
  ASSERT_THAT(client().Insert(InsertUser(tag, ""), &response), IsOk());
  EXPECT_EQ(UsersTagged(tag), 2);
  EXPECT_EQ(SqlCount("rowgate.request_log"), logged);
}

// The reply is lost with rowgate itself (SIGKILL, no shutdown); a new
// rowgate on the same database answers the retry from the log.
TEST(IdempotencyRestartTest, RetryAfterSigkillAndRestartReturnsFirstAnswer) {
  const std::string tag = UniqueTag("restart");
  const v1::InsertRequest request = InsertUser(tag, NewRequestId("restart"));
  v1::InsertResponse first, retry;
  {
    std::unique_ptr<RowgateProcess> server = RowgateProcess::Start();
    ASSERT_NE(server, nullptr);
    Client client(server->NewChannel());
    ASSERT_THAT(client.Insert(request, &first), IsOk());
    const RowgateProcess::ExitInfo exit = server->Kill();
    ASSERT_TRUE(WIFSIGNALED(exit.wait_status));
    EXPECT_EQ(WTERMSIG(exit.wait_status), SIGKILL);
  }
  std::unique_ptr<RowgateProcess> server = RowgateProcess::Start();
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_THAT(client.Insert(request, &retry), IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(first, retry))
      << "first: " << first.ShortDebugString()
      << "\nretry: " << retry.ShortDebugString();
  EXPECT_EQ(UsersTagged(tag), 1);
}

// Eight calls with one new id at once, into a table whose insert trigger
// sleeps, so the first write is still uncommitted while the others arrive:
// their claims on the id wait for it, then find it taken. One row; every
// call gets the same answer.
TEST(IdempotencyConcurrencyTest, ConcurrentCallsWithOneIdWriteOnce) {
  ExecSql(R"sql(
    DROP SCHEMA IF EXISTS idem_slow CASCADE;
    CREATE SCHEMA idem_slow;
    CREATE TABLE idem_slow.notes (id bigserial PRIMARY KEY, note text);
    CREATE FUNCTION idem_slow.slow() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$;
    CREATE TRIGGER slow BEFORE INSERT ON idem_slow.notes
      FOR EACH ROW EXECUTE FUNCTION idem_slow.slow();
  )sql");
  std::unique_ptr<RowgateProcess> server =
      RowgateProcess::Start({"--schema=idem_slow", "--pool_size=8"});
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<Client>(server->NewChannel());
  const std::string note = UniqueTag("concurrent");
  v1::InsertRequest request;
  request.set_entity("notes");
  *request.add_rows() = MakeRow({{"note", Str(note)}});
  request.set_request_id(NewRequestId("concurrent"));

  constexpr int kCalls = 8;
  absl::Barrier barrier(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<v1::InsertResponse> responses(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      barrier.Block();
      statuses[i] = client->Insert(request, &responses[i]);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(absl::StrCat("call ", i));
    ASSERT_THAT(statuses[i], IsOk());
    EXPECT_TRUE(MessageDifferencer::Equals(responses[0], responses[i]))
        << responses[i].ShortDebugString();
  }
  EXPECT_EQ(
      SqlCount(absl::StrCat("idem_slow.notes WHERE note = ", SqlQuote(note))),
      1);
  client.reset();  // first: a server with a client connected stops slowly
  server.reset();
  ExecSql("DROP SCHEMA idem_slow CASCADE");
}

// With a retention of one second the id is purged in the background soon
// after; the same request then writes again.
TEST(IdempotencyRetentionTest, ExpiredIdIsPurgedAndFreed) {
  std::unique_ptr<RowgateProcess> server =
      RowgateProcess::Start({"--request_id_retention_s=1"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  const std::string tag = UniqueTag("expire");
  const v1::InsertRequest request = InsertUser(tag, NewRequestId("expire"));
  v1::InsertResponse response;
  ASSERT_THAT(client.Insert(request, &response), IsOk());
  EXPECT_EQ(Logged(request.request_id()), 1);
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (Logged(request.request_id()) > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(Logged(request.request_id()), 0)
      << "not purged within 30 s; rowgate's output:\n"
      << server->OutputTail();
  ASSERT_THAT(client.Insert(request, &response), IsOk());
  EXPECT_EQ(UsersTagged(tag), 2);
}

// A database user that may not use rowgate's schema: rowgate starts, writes
// without a request_id work, writes with one are refused with the grant
// they need.
TEST(IdempotencyPrivilegeTest, UnwritableLogRefusesOnlyWritesWithRequestId) {
  ExecSql(R"sql(
    DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'idem_limited') THEN
        CREATE ROLE idem_limited LOGIN;
      END IF;
    END $$;
    GRANT SELECT, INSERT ON users TO idem_limited;
    GRANT USAGE ON SEQUENCE all_id_seq TO idem_limited;
  )sql");
  std::string url = rowgate::testing::TestDatabaseUrl();
  const size_t at = url.find("postgres@");
  ASSERT_NE(at, std::string::npos) << "unexpected test database URL form";
  url.replace(at, std::string("postgres@").size(), "idem_limited@");
  std::unique_ptr<RowgateProcess> server =
      RowgateProcess::Start({"--database_url=" + url});
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<Client>(server->NewChannel());
  const std::string tag = UniqueTag("limited");
  v1::InsertResponse response;
  ASSERT_THAT(client->Insert(InsertUser(tag, ""), &response), IsOk());
  EXPECT_THAT(client->Insert(InsertUser(tag + "id", NewRequestId("limited")),
                             &response),
              StatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                       AllOf(HasSubstr("rowgate.request_log"),
                             HasSubstr("GRANT USAGE ON SCHEMA rowgate"),
                             Not(HasSubstr("\n")))));
  EXPECT_EQ(UsersTagged(tag), 1);
  EXPECT_EQ(UsersTagged(tag + "id"), 0);
  client.reset();
  server.reset();
  ExecSql(R"sql(
    REVOKE ALL ON users FROM idem_limited;
    REVOKE ALL ON SEQUENCE all_id_seq FROM idem_limited;
  )sql");
}

// The log's schema is never served: the catalog would offer request_log as
// an entity any client could write. Start-up refuses it, naming why.
TEST(IdempotencyStartupTest, LogSchemaCannotBeServed) {
  EXPECT_NONFATAL_FAILURE(RowgateProcess::Start({"--schema=rowgate"}),
                          "that schema holds rowgate's request log");
}

}  // namespace
}  // namespace rowgate::e2e
