// End-to-end: Transact against a real rowgate and the demo schema. All or
// nothing (checked through SQL), the failing operation named with the code
// its single RPC gives, references to keys generated earlier in the same
// transaction, an optimistic conflict inside, and request_id retries.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class TransactTest : public SharedServerTest<TransactTest> {
 protected:
  grpc::Status Transact(const v1::TransactRequest& request,
                        v1::TransactResponse* response) {
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    return client().data()->Transact(context.get(), request, response);
  }
};

v1::Value Ref(uint32_t operation, uint32_t row, const std::string& column) {
  v1::Value value;
  value.mutable_reference()->set_operation(operation);
  value.mutable_reference()->set_row(row);
  value.mutable_reference()->set_column(column);
  return value;
}

v1::Operation InsertOp(const std::string& entity, std::vector<v1::Row> rows) {
  v1::Operation op;
  op.mutable_insert()->set_entity(entity);
  for (v1::Row& row : rows) *op.mutable_insert()->add_rows() = std::move(row);
  return op;
}

v1::Operation UpdateOp(const std::string& entity, v1::Row row) {
  v1::Operation op;
  op.mutable_update()->set_entity(entity);
  *op.mutable_update()->mutable_row() = std::move(row);
  return op;
}

v1::Operation DeleteOp(const std::string& entity, std::vector<v1::Value> keys) {
  v1::Operation op;
  op.mutable_delete_()->set_entity(entity);
  for (v1::Value& key : keys)
    *op.mutable_delete_()->add_keys() = std::move(key);
  return op;
}

v1::TransactRequest Ops(std::vector<v1::Operation> ops,
                        const std::string& request_id = "") {
  v1::TransactRequest request;
  for (v1::Operation& op : ops) *request.add_operations() = std::move(op);
  request.set_request_id(request_id);
  return request;
}

int64_t Count(const std::string& from_where) {
  return std::stoll(ExecSql("SELECT count(*) FROM " + from_where).at(0).at(0));
}

int64_t AnyGroupId() {
  return std::stoll(ExecSql("SELECT min(id) FROM groups").at(0).at(0));
}

// The notebook's case: a new user, linked to a group by the id the insert
// generated, then renamed with the lastchange the insert returned.
TEST_F(TransactTest, LaterOperationsUseKeysGeneratedByEarlierOnes) {
  const std::string email = UniqueTag("ref") + "@tx.test";
  const int64_t group = AnyGroupId();
  v1::TransactResponse response;
  ASSERT_THAT(
      Transact(
          Ops({InsertOp("users", {MakeRow({{"name", Str("New")},
                                           {"email", Str(email)}})}),
               InsertOp("users_groups", {MakeRow({{"user_id", Ref(0, 0, "id")},
                                                  {"group_id", Int(group)}})}),
               UpdateOp("users",
                        MakeRow({{"id", Ref(0, 0, "id")},
                                 {"lastchange", Ref(0, 0, "lastchange")},
                                 {"name", Str("Renamed")}}))}),
          &response),
      IsOk());
  ASSERT_EQ(response.results_size(), 3);
  const int64_t user = IdOf(response.results(0).insert().rows(0));
  const v1::Row& link = response.results(1).insert().rows(0);
  EXPECT_EQ(Field(link, "user_id").int64_value(), user);
  EXPECT_EQ(Field(link, "group_id").int64_value(), group);
  EXPECT_EQ(Field(response.results(2).update().row(), "name").string_value(),
            "Renamed");
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT name FROM users WHERE id = ", user))
                .at(0)
                .at(0),
            "Renamed");
  EXPECT_EQ(Count(absl::StrCat("users_groups WHERE user_id = ", user,
                               " AND group_id = ", group)),
            1);
}

// The last operation fails (a foreign key): the insert and the update
// before it are rolled back, and the message names operation 2 with the
// code Insert alone gives (FAILED_PRECONDITION).
TEST_F(TransactTest, FailingLastOperationLeavesTheDatabaseUnchanged) {
  const std::string email = UniqueTag("atomic") + "@tx.test";
  const std::vector<int64_t> ids = InsertUsersBySql(UniqueTag("atomic"), 1);
  v1::Row before = client().MustGet("users", ids[0]);
  v1::TransactResponse response;
  grpc::Status status = Transact(
      Ops({InsertOp("users", {MakeRow({{"email", Str(email)}})}),
           UpdateOp("users",
                    MakeRow({{"id", Int(ids[0])},
                             {"lastchange", Field(before, "lastchange")},
                             {"name", Str("changed")}})),
           InsertOp("users_groups",
                    {MakeRow({{"user_id", Ref(0, 0, "id")},
                              {"group_id", Int(999999999)}})})}),
      &response);
  EXPECT_THAT(status,
              StatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                       StartsWith("operation 2 (Insert users_groups): ")));
  EXPECT_EQ(Count("users WHERE email = " + SqlQuote(email)), 0);
  EXPECT_EQ(Field(client().MustGet("users", ids[0]), "name").string_value(),
            Field(before, "name").string_value());
}

// A stale lastchange inside a transaction is ABORTED as Update alone is,
// and what ran before it is undone.
TEST_F(TransactTest, OptimisticConflictInsideAbortsTheWholeTransaction) {
  const std::string email = UniqueTag("stale") + "@tx.test";
  const std::vector<int64_t> ids = InsertUsersBySql(UniqueTag("stale"), 1);
  v1::Row row = client().MustGet("users", ids[0]);
  ExecSql(absl::StrCat(
      "UPDATE users SET lastchange = lastchange + interval '1 second' WHERE "
      "id = ",
      ids[0]));
  v1::TransactResponse response;
  grpc::Status status = Transact(
      Ops({InsertOp("users", {MakeRow({{"email", Str(email)}})}),
           UpdateOp("users", MakeRow({{"id", Int(ids[0])},
                                      {"lastchange", Field(row, "lastchange")},
                                      {"name", Str("late")}}))}),
      &response);
  EXPECT_THAT(status,
              StatusIs(grpc::StatusCode::ABORTED,
                       AllOf(StartsWith("operation 1 (Update users): "),
                             HasSubstr("was changed since it was read"))));
  EXPECT_EQ(Count("users WHERE email = " + SqlQuote(email)), 0);
}

// With a request_id a retry answers the first run's results and writes
// nothing more; the same id with another request is refused.
TEST_F(TransactTest, RetryWithTheSameRequestIdRunsOnce) {
  const std::string email = UniqueTag("idem") + "@tx.test";
  const std::string id = UniqueTag("tx-id");
  const v1::TransactRequest request =
      Ops({InsertOp("users", {MakeRow({{"email", Str(email)}})}),
           DeleteOp("users", {Ref(0, 0, "id")}),
           InsertOp("users", {MakeRow({{"email", Str(email)}})})},
          id);
  v1::TransactResponse first, second;
  ASSERT_THAT(Transact(request, &first), IsOk());
  ASSERT_THAT(Transact(request, &second), IsOk());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(first, second))
      << first.DebugString() << "\nvs\n"
      << second.DebugString();
  EXPECT_EQ(first.results(1).delete_().deleted_keys_size(), 1);
  EXPECT_EQ(Count("users WHERE email = " + SqlQuote(email)), 1);
  v1::TransactRequest other = request;
  other.mutable_operations()->RemoveLast();
  v1::TransactResponse third;
  EXPECT_THAT(Transact(other, &third),
              StatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                       HasSubstr("already used for a different request")));
}

// An upsert is an insert with on_conflict, inside a transaction too.
TEST_F(TransactTest, UpsertRunsInsideATransaction) {
  const std::vector<int64_t> ids = InsertUsersBySql(UniqueTag("txup"), 1);
  v1::Operation upsert =
      InsertOp("users", {MakeRow({{"id", Int(ids[0])}, {"name", Str("up")}})});
  upsert.mutable_insert()->mutable_on_conflict()->set_action(
      v1::OnConflict::DO_UPDATE);
  v1::TransactResponse response;
  ASSERT_THAT(Transact(Ops({upsert}), &response), IsOk());
  ASSERT_EQ(response.results(0).insert().outcomes_size(), 1);
  EXPECT_EQ(response.results(0).insert().outcomes(0), v1::ROW_OUTCOME_UPDATED);
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT name FROM users WHERE id = ", ids[0]))
                .at(0)
                .at(0),
            "up");
}

TEST_F(TransactTest, MalformedTransactionsAreInvalidArgument) {
  v1::TransactResponse response;
  EXPECT_THAT(
      Transact(Ops({}), &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("no operations")));
  std::vector<v1::Operation> many(101, InsertOp("users", {MakeRow({})}));
  EXPECT_THAT(Transact(Ops(many), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("--max_operations_per_transaction")));
  EXPECT_THAT(
      Transact(Ops({InsertOp("users", {MakeRow({{"id", Ref(0, 0, "id")}})})}),
               &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               AllOf(StartsWith("operation 0 (Insert users): "),
                     HasSubstr("only earlier operations"))));
  EXPECT_THAT(Transact(Ops({InsertOp("users", {MakeRow({})}),
                            DeleteOp("users", {Ref(0, 3, "id")})}),
                       &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       AllOf(StartsWith("operation 1 (Delete users): "),
                             HasSubstr("no such row"))));
  v1::Operation keyed = InsertOp("users", {MakeRow({})});
  keyed.mutable_insert()->set_request_id("x");
  EXPECT_THAT(Transact(Ops({keyed}), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("request_id belongs on the TransactRequest")));
  EXPECT_THAT(Transact(Ops({v1::Operation()}), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("operation 0 (no write)")));
  EXPECT_THAT(Transact(Ops({InsertOp("nosuch", {MakeRow({})})}), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       StartsWith("operation 0 (Insert nosuch): ")));
  // A reference anywhere else is refused, not read as null.
  v1::InsertRequest insert;
  insert.set_entity("users");
  *insert.add_rows() = MakeRow({{"name", Ref(0, 0, "id")}});
  v1::InsertResponse inserted;
  EXPECT_THAT(client().Insert(insert, &inserted),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("only Transact resolves")));
}

// users_groups has the notebook's composite key (id, user_id, group_id): a
// link inserted and deleted by its full key inside one transaction, the
// key's parts referring to what the insert stored. The transaction commits
// with the link gone; a partial key is INVALID_ARGUMENT naming the
// operation and the key's columns.
TEST_F(TransactTest, DeletesByACompositeKeyWhosePartsAreReferences) {
  const int64_t group = AnyGroupId();
  const int64_t user =
      std::stoll(ExecSql("SELECT min(id) FROM users").at(0).at(0));
  v1::Value key;
  *key.mutable_list_value()->add_values() = Ref(0, 0, "id");
  *key.mutable_list_value()->add_values() = Ref(0, 0, "user_id");
  *key.mutable_list_value()->add_values() = Ref(0, 0, "group_id");
  v1::TransactResponse response;
  ASSERT_THAT(
      Transact(
          Ops({InsertOp("users_groups", {MakeRow({{"user_id", Int(user)},
                                                  {"group_id", Int(group)}})}),
               DeleteOp("users_groups", {key})}),
          &response),
      IsOk());
  ASSERT_EQ(response.results_size(), 2);
  const int64_t link = IdOf(response.results(0).insert().rows(0));
  ASSERT_EQ(response.results(1).delete_().deleted_keys_size(), 1);
  EXPECT_EQ(Count(absl::StrCat("users_groups WHERE id = ", link)), 0);

  v1::Value partial;
  *partial.mutable_list_value()->add_values() = Int(link);
  grpc::Status status =
      Transact(Ops({DeleteOp("users_groups", {partial})}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("operation 0"));
  EXPECT_THAT(status.error_message(), HasSubstr("user_id"));
}

}  // namespace
}  // namespace rowgate::e2e
