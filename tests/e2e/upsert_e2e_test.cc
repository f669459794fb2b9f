// End-to-end: Insert with on_conflict (upsert) against a real rowgate, on
// the primary key and on a named unique constraint, DO_NOTHING and
// DO_UPDATE: the rows come back as stored, each with what happened to it,
// and the version column moves on update only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class UpsertTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      DROP SCHEMA IF EXISTS upsert_e2e CASCADE;
      CREATE SCHEMA upsert_e2e;
      CREATE TABLE upsert_e2e.items (
        id bigint PRIMARY KEY DEFAULT nextval('all_id_seq'),
        sku text NOT NULL,
        name text,
        qty int DEFAULT 0,
        lastchange timestamp DEFAULT timezone('UTC', now()),
        CONSTRAINT items_sku_key UNIQUE (sku));
      CREATE UNIQUE INDEX items_name_idx ON upsert_e2e.items (name);
    )sql");
    server_ = RowgateProcess::Start({"--schema=upsert_e2e"}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<Client>(server_->NewChannel());
  }

  static v1::InsertRequest Upsert(std::vector<v1::Row> rows,
                                  v1::OnConflict::Action action,
                                  const std::string& constraint = "",
                                  std::vector<std::string> update = {}) {
    v1::InsertRequest request;
    request.set_entity("items");
    for (v1::Row& row : rows) *request.add_rows() = std::move(row);
    request.mutable_on_conflict()->set_action(action);
    request.mutable_on_conflict()->set_constraint(constraint);
    for (std::string& c : update) {
      request.mutable_on_conflict()->add_update_columns(std::move(c));
    }
    return request;
  }

  static inline RowgateProcess* server_ = nullptr;
  std::unique_ptr<Client> client_;
};

// DO_UPDATE on the primary key: the new id is inserted, the existing one
// updated with a later lastchange; outcomes say which, in request order.
TEST_F(UpsertTest,
       DoUpdateOnPrimaryKeyReportsInsertedAndUpdatedAndMovesTheVersion) {
  const int64_t id = NextSequenceValue();
  const int64_t fresh = NextSequenceValue();
  ExecSql(absl::StrCat(
      "INSERT INTO upsert_e2e.items (id, sku, name, qty, lastchange) VALUES (",
      id, ", 'pk-1', 'pk one', 1, '2020-01-01')"));
  v1::InsertResponse response;
  ASSERT_THAT(
      client_->Insert(
          Upsert(
              {MakeRow(
                   {{"id", Int(fresh)}, {"sku", Str("pk-2")}, {"qty", Int(5)}}),
               MakeRow(
                   {{"id", Int(id)}, {"sku", Str("pk-1")}, {"qty", Int(7)}})},
              v1::OnConflict::DO_UPDATE),
          &response),
      IsOk());
  ASSERT_EQ(response.rows_size(), 2);
  EXPECT_THAT(response.outcomes(),
              ElementsAre(v1::ROW_OUTCOME_INSERTED, v1::ROW_OUTCOME_UPDATED));
  EXPECT_EQ(IdOf(response.rows(0)), fresh);
  EXPECT_EQ(IdOf(response.rows(1)), id);
  EXPECT_EQ(Field(response.rows(1), "qty").int64_value(), 7);
  // Columns the rows do not name are kept.
  EXPECT_EQ(Field(response.rows(1), "name").string_value(), "pk one");
  const int64_t version =
      Micros(Field(response.rows(1), "lastchange").timestamp_value());
  EXPECT_GT(version, 1577836800LL * 1000000);  // later than 2020-01-01
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT qty, (extract(epoch FROM lastchange)"
                                 " * 1000000)::bigint FROM upsert_e2e.items "
                                 "WHERE id = ",
                                 id))[0],
            std::vector<std::string>({"7", absl::StrCat(version)}));
}

// A named unique constraint as the target, with update_columns: only those
// columns change; the stored id is kept.
TEST_F(UpsertTest, DoUpdateOnNamedConstraintSetsOnlyTheListedColumns) {
  ExecSql(
      "INSERT INTO upsert_e2e.items (sku, name, qty) VALUES ('c-1', 'c one', "
      "1)");
  const std::string id =
      ExecSql("SELECT id FROM upsert_e2e.items WHERE sku = 'c-1'")[0][0];
  v1::InsertResponse response;
  ASSERT_THAT(client_->Insert(
                  Upsert({MakeRow({{"sku", Str("c-1")},
                                   {"name", Str("ignored")},
                                   {"qty", Int(9)}})},
                         v1::OnConflict::DO_UPDATE, "items_sku_key", {"qty"}),
                  &response),
              IsOk());
  ASSERT_EQ(response.rows_size(), 1);
  EXPECT_THAT(response.outcomes(), ElementsAre(v1::ROW_OUTCOME_UPDATED));
  EXPECT_EQ(absl::StrCat(IdOf(response.rows(0))), id);
  EXPECT_EQ(Field(response.rows(0), "qty").int64_value(), 9);
  EXPECT_EQ(Field(response.rows(0), "name").string_value(), "c one");
}

// DO_NOTHING: the conflicting row is reported UNCHANGED with the row as
// stored (its lastchange unmoved), the other inserted; a duplicate within
// the request meets the row its earlier twin inserted.
TEST_F(UpsertTest, DoNothingReturnsTheStoredRowUnchanged) {
  ExecSql(
      "INSERT INTO upsert_e2e.items (sku, name, qty, lastchange) VALUES "
      "('n-1', 'n one', 1, '2021-06-01 12:00:00')");
  v1::InsertResponse response;
  ASSERT_THAT(
      client_->Insert(Upsert({MakeRow({{"sku", Str("n-1")}, {"qty", Int(100)}}),
                              MakeRow({{"sku", Str("n-2")}, {"qty", Int(2)}}),
                              MakeRow({{"sku", Str("n-2")}, {"qty", Int(3)}})},
                             v1::OnConflict::DO_NOTHING, "items_sku_key"),
                      &response),
      IsOk());
  ASSERT_EQ(response.rows_size(), 3);
  EXPECT_THAT(response.outcomes(),
              ElementsAre(v1::ROW_OUTCOME_UNCHANGED, v1::ROW_OUTCOME_INSERTED,
                          v1::ROW_OUTCOME_UNCHANGED));
  EXPECT_EQ(Field(response.rows(0), "qty").int64_value(), 1);
  EXPECT_EQ(Field(response.rows(0), "name").string_value(), "n one");
  EXPECT_EQ(Micros(Field(response.rows(0), "lastchange").timestamp_value()),
            1622548800LL * 1000000);
  EXPECT_EQ(Field(response.rows(1), "qty").int64_value(), 2);
  EXPECT_EQ(IdOf(response.rows(2)), IdOf(response.rows(1)));
  EXPECT_EQ(ExecSql("SELECT qty FROM upsert_e2e.items WHERE sku = 'n-1'")[0][0],
            "1");
  EXPECT_EQ(ExecSql("SELECT count(*) FROM upsert_e2e.items WHERE sku = "
                    "'n-2'")[0][0],
            "1");
}

// DO_NOTHING on the primary key, and a unique index (not a constraint) by
// its name, as DescribeEntity lists them.
TEST_F(UpsertTest, UniqueIndexIsATargetAndDescribeEntityListsIt) {
  v1::DescribeEntityRequest describe;
  describe.set_entity("items");
  v1::EntityDescription description;
  grpc::ClientContext context;
  ASSERT_THAT(client_->data()->DescribeEntity(&context, describe, &description),
              IsOk());
  ASSERT_EQ(description.unique_constraints_size(), 2);
  EXPECT_EQ(description.unique_constraints(0).name(), "items_name_idx");
  EXPECT_THAT(description.unique_constraints(0).columns(), ElementsAre("name"));
  EXPECT_EQ(description.unique_constraints(1).name(), "items_sku_key");

  v1::InsertResponse first, second;
  ASSERT_THAT(
      client_->Insert(
          Upsert({MakeRow({{"sku", Str("i-1")}, {"name", Str("by index")}})},
                 v1::OnConflict::DO_NOTHING, "items_name_idx"),
          &first),
      IsOk());
  EXPECT_THAT(first.outcomes(), ElementsAre(v1::ROW_OUTCOME_INSERTED));
  ASSERT_THAT(
      client_->Insert(
          Upsert({MakeRow({{"sku", Str("i-2")}, {"name", Str("by index")}})},
                 v1::OnConflict::DO_NOTHING, "items_name_idx"),
          &second),
      IsOk());
  EXPECT_THAT(second.outcomes(), ElementsAre(v1::ROW_OUTCOME_UNCHANGED));
  EXPECT_EQ(IdOf(second.rows(0)), IdOf(first.rows(0)));
  EXPECT_EQ(Field(second.rows(0), "sku").string_value(), "i-1");
}

TEST_F(UpsertTest, BadChoicesAreInvalidArgumentNamingWhat) {
  v1::InsertResponse response;
  EXPECT_THAT(client_->Insert(Upsert({MakeRow({{"sku", Str("b-1")}})},
                                     v1::OnConflict::DO_UPDATE, "no_such"),
                              &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no unique constraint \"no_such\"")));
  EXPECT_THAT(
      client_->Insert(Upsert({MakeRow({{"sku", Str("b-1")}})},
                             v1::OnConflict::DO_UPDATE, "", {"lastchange"}),
                      &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               HasSubstr("version column")));
  EXPECT_THAT(
      client_->Insert(Upsert({MakeRow({{"sku", Str("b-1")}})},
                             v1::OnConflict::ACTION_UNSPECIFIED),
                      &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("action")));
  // The same target twice in one DO_UPDATE cannot be applied by one
  // statement; nothing is written.
  EXPECT_THAT(
      client_->Insert(Upsert({MakeRow({{"sku", Str("b-2")}}),
                              MakeRow({{"sku", Str("b-2")}})},
                             v1::OnConflict::DO_UPDATE, "items_sku_key"),
                      &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               HasSubstr("same conflict target")));
  EXPECT_EQ(ExecSql("SELECT count(*) FROM upsert_e2e.items WHERE sku = "
                    "'b-2'")[0][0],
            "0");
}

}  // namespace
}  // namespace rowgate::e2e
