// End-to-end: Insert, Update (optimistic concurrency on lastchange) and
// Delete against a real rowgate. Each test writes rows of its own (tagged
// emails) and checks them through the API and through SQL.
#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/time.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int64_t kMissingId = 999999999;

// A user row with a unique email; `name` defaults to "Test".
v1::Row NewUser(const std::string& tag, const std::string& name = "Test") {
  return MakeRow(
      {{"name", Str(name)}, {"email", Str(absl::StrCat(tag, "@write.test"))}});
}

v1::InsertRequest InsertRequest(const std::string& entity,
                                std::vector<v1::Row> rows) {
  v1::InsertRequest request;
  request.set_entity(entity);
  for (v1::Row& row : rows) *request.add_rows() = std::move(row);
  return request;
}

v1::UpdateRequest UpdateRequest(const std::string& entity, v1::Row row) {
  v1::UpdateRequest request;
  request.set_entity(entity);
  *request.mutable_row() = std::move(row);
  return request;
}

v1::DeleteRequest DeleteRequest(const std::string& entity,
                                std::vector<v1::Value> keys) {
  v1::DeleteRequest request;
  request.set_entity(entity);
  for (v1::Value& key : keys) *request.add_keys() = std::move(key);
  return request;
}

// users.lastchange of `id` in microseconds since the epoch, read by SQL.
int64_t SqlLastchangeMicros(int64_t id) {
  auto rows = ExecSql(absl::StrCat(
      "SELECT (extract(epoch FROM lastchange) * 1000000)::bigint FROM users "
      "WHERE id = ",
      id));
  return std::stoll(rows.at(0).at(0));
}

std::string SqlUserName(int64_t id) {
  auto rows = ExecSql(absl::StrCat("SELECT name FROM users WHERE id = ", id));
  return rows.empty() ? "<no row>" : rows[0][0];
}

int64_t SqlCount(const std::string& from_where) {
  return std::stoll(ExecSql("SELECT count(*) FROM " + from_where).at(0).at(0));
}

class InsertTest : public SharedServerTest<InsertTest> {};

// Two rows in one call: both stored, ids from all_id_seq, lastchange set,
// omitted columns NULL.
TEST_F(InsertTest, ReturnsStoredRowsWithGeneratedIdAndLastchange) {
  const std::string tag = UniqueTag("ins");
  v1::InsertResponse response;
  ASSERT_THAT(
      client().Insert(InsertRequest("users", {NewUser(tag + "a", "Ann"),
                                              NewUser(tag + "b", "Bob")}),
                      &response),
      IsOk());
  ASSERT_THAT(response.rows(), SizeIs(2));
  const int64_t sequence =
      std::stoll(ExecSql("SELECT last_value FROM all_id_seq").at(0).at(0));
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(absl::StrCat("row ", i));
    const v1::Row& row = response.rows(i);
    EXPECT_EQ(Field(row, "name").string_value(), i == 0 ? "Ann" : "Bob");
    EXPECT_EQ(Field(row, "email").string_value(),
              absl::StrCat(tag, i == 0 ? "a" : "b", "@write.test"));
    const int64_t id = IdOf(row);
    EXPECT_GT(id, 24);
    EXPECT_LE(id, sequence);
    EXPECT_EQ(Field(row, "surname").kind_case(), v1::Value::kNullValue);
    ASSERT_EQ(Field(row, "lastchange").kind_case(), v1::Value::kTimestampValue);
    EXPECT_EQ(Micros(Field(row, "lastchange").timestamp_value()),
              SqlLastchangeMicros(id));
    EXPECT_EQ(SqlUserName(id), i == 0 ? "Ann" : "Bob");
  }
  EXPECT_NE(IdOf(response.rows(0)), IdOf(response.rows(1)));
}

// A foreign key violation is FAILED_PRECONDITION and, in a two-row insert,
// leaves the valid first row out too (one statement: all or nothing).
TEST_F(InsertTest, ForeignKeyViolationInsertsNothing) {
  const int64_t user =
      IdOf(client().MustInsert("users", {NewUser(UniqueTag("fk"))})[0]);
  v1::InsertResponse response;
  EXPECT_THAT(
      client().Insert(
          InsertRequest("users_groups", {MakeRow({{"user_id", Int(kMissingId)},
                                                  {"group_id", Int(13)}})}),
          &response),
      StatusIs(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_THAT(
      client().Insert(
          InsertRequest(
              "users_groups",
              {MakeRow({{"user_id", Int(user)}, {"group_id", Int(13)}}),
               MakeRow({{"user_id", Int(kMissingId)}, {"group_id", Int(13)}})}),
          &response),
      StatusIs(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(SqlCount(absl::StrCat("users_groups WHERE user_id = ", user)), 0);
  EXPECT_EQ(SqlCount(absl::StrCat("users_groups WHERE user_id = ", kMissingId)),
            0);
}

TEST_F(InsertTest, DuplicatePrimaryKeyIsAlreadyExists) {
  v1::InsertResponse response;
  v1::Row row = NewUser(UniqueTag("dup"), "Impostor");
  (*row.mutable_fields())["id"] = Int(1);
  EXPECT_THAT(client().Insert(InsertRequest("users", {row}), &response),
              StatusIs(grpc::StatusCode::ALREADY_EXISTS));
  EXPECT_EQ(SqlUserName(1), "Leslie");
}

TEST_F(InsertTest, RejectsUnknownColumnNamingIt) {
  v1::Row row = NewUser(UniqueTag("col"));
  (*row.mutable_fields())["no_such_column"] = Str("x");
  v1::InsertResponse response;
  EXPECT_THAT(client().Insert(InsertRequest("users", {row}), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no_such_column")));
}

TEST_F(InsertTest, RejectsWrongValueTypeNamingColumn) {
  const std::string tag = UniqueTag("type");
  v1::Row row = NewUser(tag);
  (*row.mutable_fields())["externalId"] = Str("not a number");
  v1::InsertResponse response;
  EXPECT_THAT(
      client().Insert(InsertRequest("users", {row}), &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("externalId")));
  EXPECT_EQ(SqlCount("users WHERE email = " + SqlQuote(tag + "@write.test")),
            0);
}

TEST_F(InsertTest, RejectsUnknownEntityNamingIt) {
  v1::InsertResponse response;
  EXPECT_THAT(client().Insert(
                  InsertRequest("no_such_entity", {NewUser(UniqueTag("ent"))}),
                  &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no_such_entity")));
}

// ------------------------------------------------------------------ Update

class UpdateTest : public SharedServerTest<UpdateTest> {
 protected:
  // A fresh user with every column set, read back through BatchGet.
  v1::Row NewFullUser() {
    v1::Row row = NewUser(UniqueTag("upd"), "Before");
    (*row.mutable_fields())["surname"] = Str("Kept");
    (*row.mutable_fields())["externalId"] = Int(4242);
    const int64_t id = IdOf(client().MustInsert("users", {row})[0]);
    return client().MustGet("users", id);
  }
};

// Only the sent columns change, and lastchange moves forward.
TEST_F(UpdateTest, ChangesOnlyGivenColumnsAndBumpsVersion) {
  const v1::Row before = NewFullUser();
  const int64_t id = IdOf(before);
  v1::UpdateResponse response;
  ASSERT_THAT(
      client().Update(
          UpdateRequest("users",
                        MakeRow({{"id", Int(id)},
                                 {"lastchange", Field(before, "lastchange")},
                                 {"name", Str("After")}})),
          &response),
      IsOk());
  const v1::Row& after = response.row();
  EXPECT_EQ(IdOf(after), id);
  EXPECT_EQ(Field(after, "name").string_value(), "After");
  EXPECT_EQ(Field(after, "surname").string_value(), "Kept");
  EXPECT_EQ(Field(after, "externalId").int64_value(), 4242);
  EXPECT_EQ(Field(after, "email").string_value(),
            Field(before, "email").string_value());
  const int64_t old_version =
      Micros(Field(before, "lastchange").timestamp_value());
  const int64_t new_version =
      Micros(Field(after, "lastchange").timestamp_value());
  EXPECT_GT(new_version, old_version);
  EXPECT_EQ(SqlUserName(id), "After");
  EXPECT_EQ(SqlLastchangeMicros(id), new_version);
  EXPECT_EQ(
      Micros(
          Field(client().MustGet("users", id), "lastchange").timestamp_value()),
      new_version);
}

// A version that is no longer the stored one is ABORTED, names the current
// version, and changes nothing.
TEST_F(UpdateTest, StaleVersionIsAbortedAndReportsCurrentVersion) {
  const v1::Row before = NewFullUser();
  const int64_t id = IdOf(before);
  v1::UpdateResponse first;
  ASSERT_THAT(
      client().Update(
          UpdateRequest("users",
                        MakeRow({{"id", Int(id)},
                                 {"lastchange", Field(before, "lastchange")},
                                 {"name", Str("First")}})),
          &first),
      IsOk());
  v1::UpdateResponse second;
  grpc::Status status = client().Update(
      UpdateRequest("users",
                    MakeRow({{"id", Int(id)},
                             {"lastchange", Field(before, "lastchange")},
                             {"name", Str("Second")}})),
      &second);
  EXPECT_THAT(status, StatusIs(grpc::StatusCode::ABORTED));
  // The current lastchange, as Postgres prints it (date, then time with the
  // fraction's trailing zeros dropped): it must appear in the message,
  // whether the server writes a space or a 'T' between the two.
  auto current = ExecSql(absl::StrCat(
      "SELECT to_char(lastchange, 'YYYY-MM-DD'), "
      "rtrim(rtrim(to_char(lastchange, 'HH24:MI:SS.US'), '0'), '.') "
      "FROM users WHERE id = ",
      id));
  EXPECT_THAT(status.error_message(), AllOf(HasSubstr(current.at(0).at(0)),
                                            HasSubstr(current.at(0).at(1))))
      << "the message should carry the current lastchange";
  EXPECT_EQ(SqlUserName(id), "First");
  const v1::Row now = client().MustGet("users", id);
  EXPECT_EQ(Field(now, "name").string_value(), "First");
  EXPECT_EQ(Micros(Field(now, "lastchange").timestamp_value()),
            Micros(Field(first.row(), "lastchange").timestamp_value()));
}

TEST_F(UpdateTest, MissingRowIsNotFound) {
  const v1::Row some_user = client().MustGet("users", 1);
  v1::UpdateResponse response;
  EXPECT_THAT(
      client().Update(
          UpdateRequest("users",
                        MakeRow({{"id", Int(kMissingId)},
                                 {"lastchange", Field(some_user, "lastchange")},
                                 {"name", Str("Ghost")}})),
          &response),
      StatusIs(grpc::StatusCode::NOT_FOUND));
}

TEST_F(UpdateTest, VersionedEntityWithoutVersionIsInvalidArgument) {
  const v1::Row before = NewFullUser();
  v1::UpdateResponse response;
  EXPECT_THAT(
      client().Update(UpdateRequest("users", MakeRow({{"id", Int(IdOf(before))},
                                                      {"name", Str("Blind")}})),
                      &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(SqlUserName(IdOf(before)), "Before");
}

// grouptypes has no lastchange: an update needs no version.
TEST_F(UpdateTest, UnversionedEntityUpdatesWithoutVersion) {
  const int64_t id = IdOf(client().MustInsert(
      "grouptypes", {MakeRow({{"name", Str("institute")}})})[0]);
  v1::UpdateResponse response;
  ASSERT_THAT(client().Update(
                  UpdateRequest("grouptypes", MakeRow({{"id", Int(id)},
                                                       {"name", Str("lab")}})),
                  &response),
              IsOk());
  EXPECT_EQ(IdOf(response.row()), id);
  EXPECT_EQ(Field(response.row(), "name").string_value(), "lab");
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT name FROM grouptypes WHERE id = ", id))
                .at(0)
                .at(0),
            "lab");
}

TEST_F(UpdateTest, MissingPrimaryKeyIsInvalidArgument) {
  const v1::Row before = NewFullUser();
  v1::UpdateResponse response;
  EXPECT_THAT(
      client().Update(
          UpdateRequest("users",
                        MakeRow({{"lastchange", Field(before, "lastchange")},
                                 {"name", Str("Nobody")}})),
          &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_F(UpdateTest, RejectsUnknownColumnNamingIt) {
  const v1::Row before = NewFullUser();
  v1::UpdateResponse response;
  EXPECT_THAT(
      client().Update(
          UpdateRequest("users",
                        MakeRow({{"id", Int(IdOf(before))},
                                 {"lastchange", Field(before, "lastchange")},
                                 {"no_such_column", Str("x")}})),
          &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               HasSubstr("no_such_column")));
}

// Threads that read the same version race to update: exactly one wins, the
// rest are ABORTED, and the stored row is the winner's.
TEST_F(UpdateTest, ConcurrentUpdatesWithSameVersionLetExactlyOneWin) {
  const v1::Row before = NewFullUser();
  const int64_t id = IdOf(before);
  constexpr int kThreads = 8;
  std::vector<grpc::Status> statuses(kThreads);
  std::vector<v1::UpdateResponse> responses(kThreads);
  absl::Barrier* start = new absl::Barrier(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      // Each thread reads the row itself, as independent clients would.
      const v1::Row read = client().MustGet("users", id);
      v1::UpdateRequest request = UpdateRequest(
          "users", MakeRow({{"id", Int(id)},
                            {"lastchange", Field(read, "lastchange")},
                            {"name", Str(absl::StrCat("racer", i))}}));
      if (start->Block()) delete start;
      statuses[i] = client().Update(request, &responses[i]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  int winners = 0;
  std::string winner_name;
  for (int i = 0; i < kThreads; ++i) {
    SCOPED_TRACE(absl::StrCat("thread ", i));
    if (statuses[i].ok()) {
      ++winners;
      winner_name = absl::StrCat("racer", i);
      EXPECT_EQ(Field(responses[i].row(), "name").string_value(), winner_name);
    } else {
      EXPECT_THAT(statuses[i], StatusIs(grpc::StatusCode::ABORTED));
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(SqlUserName(id), winner_name);
}

// ------------------------------------------------------------------ Delete

class DeleteTest : public SharedServerTest<DeleteTest> {
 protected:
  std::vector<int64_t> NewUserIds(int count) {
    std::vector<v1::Row> rows;
    for (int i = 0; i < count; ++i) rows.push_back(NewUser(UniqueTag("del")));
    std::vector<int64_t> ids;
    for (const v1::Row& row : client().MustInsert("users", rows)) {
      ids.push_back(IdOf(row));
    }
    return ids;
  }
};

// deleted_keys are the keys that existed, in request order; a second delete
// finds nothing.
TEST_F(DeleteTest, ReturnsOnlyExistingKeysInRequestOrder) {
  const std::vector<int64_t> ids = NewUserIds(3);
  ASSERT_THAT(ids, SizeIs(3));
  v1::DeleteResponse response;
  const v1::DeleteRequest request = DeleteRequest(
      "users", {Int(ids[2]), Int(kMissingId), Int(ids[0]), Int(ids[1])});
  ASSERT_THAT(client().Delete(request, &response), IsOk());
  std::vector<int64_t> deleted;
  for (const v1::Value& key : response.deleted_keys()) {
    EXPECT_EQ(key.kind_case(), v1::Value::kInt64Value);
    deleted.push_back(key.int64_value());
  }
  EXPECT_THAT(deleted, ElementsAre(ids[2], ids[0], ids[1]));
  EXPECT_EQ(SqlCount(absl::StrFormat("users WHERE id IN (%d, %d, %d)", ids[0],
                                     ids[1], ids[2])),
            0);
  v1::DeleteResponse again;
  ASSERT_THAT(client().Delete(request, &again), IsOk());
  EXPECT_THAT(again.deleted_keys(), IsEmpty());
}

TEST_F(DeleteTest, StaleExpectedVersionIsAbortedAndKeepsRow) {
  const int64_t id = NewUserIds(1).at(0);
  const v1::Row read = client().MustGet("users", id);
  v1::UpdateResponse updated;
  ASSERT_THAT(
      client().Update(
          UpdateRequest("users",
                        MakeRow({{"id", Int(id)},
                                 {"lastchange", Field(read, "lastchange")},
                                 {"name", Str("Changed")}})),
          &updated),
      IsOk());
  v1::DeleteRequest request = DeleteRequest("users", {Int(id)});
  *request.mutable_expected_version() = Field(read, "lastchange");
  v1::DeleteResponse response;
  EXPECT_THAT(client().Delete(request, &response),
              StatusIs(grpc::StatusCode::ABORTED));
  EXPECT_EQ(SqlCount(absl::StrCat("users WHERE id = ", id)), 1);
}

TEST_F(DeleteTest, CurrentExpectedVersionDeletes) {
  const int64_t id = NewUserIds(1).at(0);
  const v1::Row read = client().MustGet("users", id);
  v1::DeleteRequest request = DeleteRequest("users", {Int(id)});
  *request.mutable_expected_version() = Field(read, "lastchange");
  v1::DeleteResponse response;
  ASSERT_THAT(client().Delete(request, &response), IsOk());
  ASSERT_THAT(response.deleted_keys(), SizeIs(1));
  EXPECT_EQ(response.deleted_keys(0).int64_value(), id);
  EXPECT_EQ(SqlCount(absl::StrCat("users WHERE id = ", id)), 0);
}

// The proto allows expected_version only with exactly one key.
TEST_F(DeleteTest, ExpectedVersionWithSeveralKeysIsInvalidArgument) {
  const std::vector<int64_t> ids = NewUserIds(2);
  ASSERT_THAT(ids, SizeIs(2));
  const v1::Row read = client().MustGet("users", ids[0]);
  v1::DeleteRequest request =
      DeleteRequest("users", {Int(ids[0]), Int(ids[1])});
  *request.mutable_expected_version() = Field(read, "lastchange");
  v1::DeleteResponse response;
  EXPECT_THAT(client().Delete(request, &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(
      SqlCount(absl::StrFormat("users WHERE id IN (%d, %d)", ids[0], ids[1])),
      2);
}

}  // namespace
}  // namespace rowgate::e2e
