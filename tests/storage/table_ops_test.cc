// Storage against the real PostgreSQL: the catalog, every supported type
// written and read back exactly, values that look like SQL staying values,
// error mapping, and reconnecting after the backend is terminated.
// Uses its own schema, storage_test, so the public demo schema is untouched.
#include "storage/table_ops.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/pg_error.h"
#include "tests/common/test_database.h"

namespace rowgate::storage {
namespace {

using rowgate::testing::ExecSql;
using rowgate::testing::TestDatabaseUrl;

class TableOpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      DROP SCHEMA IF EXISTS storage_test CASCADE;
      CREATE SCHEMA storage_test;
      CREATE TABLE storage_test.items (
        code text PRIMARY KEY,
        small smallint, big bigint, ratio real, amount numeric(12, 3),
        flag boolean, blob bytea, at timestamptz, day date,
        token uuid, doc jsonb, addr inet,
        version timestamp DEFAULT timezone('UTC', now()),
        doubled bigint GENERATED ALWAYS AS (big * 2) STORED);
      CREATE EXTENSION IF NOT EXISTS citext;
      CREATE TABLE storage_test.padded (code char(5) PRIMARY KEY, n int);
      CREATE TABLE storage_test.folded (code citext PRIMARY KEY, n int);
      INSERT INTO storage_test.padded VALUES ('abc', 1), ('x', 2);
      INSERT INTO storage_test.folded VALUES ('Alice', 1), ('bob', 2);
      CREATE TABLE storage_test.no_key (a int);
      CREATE TABLE storage_test.pair (a int, b int, PRIMARY KEY (a, b));
    )sql");
  }

  void SetUp() override {
    conn_ = std::make_unique<Connection>(TestDatabaseUrl());
    auto catalog = Catalog::Load(*conn_, "storage_test", "version");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *catalog;
    items_ = catalog_->Find("items");
    ASSERT_NE(items_, nullptr);
  }

  int Col(const std::string& name) { return items_->ColumnIndex(name); }

  std::unique_ptr<Connection> conn_;
  std::shared_ptr<const Catalog> catalog_;
  const Entity* items_ = nullptr;
};

// A table without a primary key is skipped; one with a composite key
// (pair) is an entity since issue 10.
TEST_F(TableOpsTest, CatalogListsEntitiesWithAPrimaryKey) {
  EXPECT_EQ(catalog_->entities().size(), 4u);
  EXPECT_EQ(catalog_->skipped().size(), 1u);
  const Entity* pair = catalog_->Find("pair");
  ASSERT_NE(pair, nullptr);
  EXPECT_EQ(pair->key_columns, (std::vector<int>{0, 1}));
  EXPECT_EQ(pair->primary_key, -1);
  EXPECT_EQ(items_->key().name, "code");
  EXPECT_EQ(items_->columns[items_->version_column].name, "version");
  EXPECT_EQ(items_->columns[Col("addr")].type, ColumnType::kOther);
  EXPECT_TRUE(items_->columns[Col("doubled")].generated);
  EXPECT_EQ(items_->columns[Col("amount")].type_name, "numeric(12,3)");
}

TEST_F(TableOpsTest, EveryTypeRoundTripsExactly) {
  ColumnValues row = {
      {Col("code"), std::string("all-types")},
      {Col("small"), int64_t{-32768}},
      {Col("big"), int64_t{9007199254740993}},
      {Col("ratio"), 0.5},
      {Col("amount"), std::string("123456789.125")},
      {Col("flag"), true},
      {Col("blob"), Bytes{std::string("\0\x01\xff", 3)}},
      {Col("at"), Timestamp{1697539674174001}},
      {Col("day"), std::string("2024-02-29")},
      {Col("token"), std::string("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
      {Col("doc"), std::string("{\"a\": [1, 2]}")},
      {Col("addr"), std::string("192.168.0.1")},
  };
  auto inserted = InsertRows(*conn_, *items_, {row});
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  auto fetched =
      FetchByKeys(*conn_, *items_, items_->primary_key, {"all-types"});
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  const Row& stored = fetched->by_key.at("all-types")[0];
  for (const auto& [column, value] : row) {
    EXPECT_EQ(stored[column], value) << items_->columns[column].name;
  }
  EXPECT_EQ(std::get<int64_t>(stored[Col("doubled")]), 2 * 9007199254740993);
  EXPECT_TRUE(std::holds_alternative<Timestamp>(stored[Col("version")]));
}

// Values are always bound parameters: text that looks like SQL is stored
// as text, and keys with quotes, commas and backslashes are found.
TEST_F(TableOpsTest, ValuesThatLookLikeSqlStayValues) {
  const std::vector<std::string> codes = {
      "'); DROP TABLE storage_test.items; --", "a,b", "q\"uote", "back\\slash",
      "NULL"};
  std::vector<ColumnValues> rows;
  for (const auto& code : codes) rows.push_back({{Col("code"), code}});
  ASSERT_TRUE(InsertRows(*conn_, *items_, rows).ok());
  auto fetched = FetchByKeys(*conn_, *items_, items_->primary_key, codes);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  for (const auto& code : codes)
    EXPECT_EQ(fetched->by_key.count(code), 1u) << code;
  EXPECT_EQ(
      ExecSql(
          "SELECT count(*) FROM storage_test.items WHERE code = 'NULL'")[0][0],
      "1");
}

TEST_F(TableOpsTest, MapsConstraintViolationsToStatusCodes) {
  ASSERT_TRUE(
      InsertRows(*conn_, *items_, {{{Col("code"), std::string("dup")}}}).ok());
  auto again =
      InsertRows(*conn_, *items_, {{{Col("code"), std::string("dup")}}});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("duplicate key"),
            absl::string_view::npos);
  auto bad_json = InsertRows(
      *conn_, *items_,
      {{{Col("code"), std::string("j")}, {Col("doc"), std::string("{nope")}}});
  EXPECT_EQ(bad_json.status().code(), absl::StatusCode::kInvalidArgument);
  auto generated = InsertRows(
      *conn_, *items_,
      {{{Col("code"), std::string("g")}, {Col("doubled"), int64_t{1}}}});
  EXPECT_EQ(generated.status().code(), absl::StatusCode::kInvalidArgument);
}

// All or nothing: one bad row in a multi-row insert stores no row.
TEST_F(TableOpsTest, MultiRowInsertIsAllOrNothing) {
  auto result = InsertRows(*conn_, *items_,
                           {{{Col("code"), std::string("first-of-two")}},
                            {{Col("code"), std::string("x")},
                             {Col("small"), int64_t{1}},
                             {Col("doc"), std::string("not json")}}});
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(
      ExecSql(
          "SELECT count(*) FROM storage_test.items WHERE code = 'first-of-two'")
          [0][0],
      "0");
}

// A null primary key used to crash the process (an empty optional was
// dereferenced while explaining the no-match).
TEST_F(TableOpsTest, UpdateRefusesANullPrimaryKey) {
  auto updated = UpdateRow(*conn_, *items_,
                           {{Col("code"), std::monostate()},
                            {Col("small"), int64_t{1}},
                            {Col("version"), Timestamp{0}}});
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(updated.status().message().find("\"code\" is null or unset"),
            absl::string_view::npos)
      << updated.status();
}

// An infinite version never changes (infinity + 1us is infinity), so two
// updates sending the same version would both succeed.
TEST_F(TableOpsTest, InsertRefusesAnInfiniteVersion) {
  for (const char* text : {"infinity", "-infinity", " +Infinity "}) {
    auto inserted = InsertRows(*conn_, *items_,
                               {{{Col("code"), std::string("inf-version")},
                                 {Col("version"), std::string(text)}}});
    EXPECT_EQ(inserted.status().code(), absl::StatusCode::kInvalidArgument)
        << text;
    EXPECT_NE(inserted.status().message().find("\"version\""),
              absl::string_view::npos)
        << inserted.status();
  }
  EXPECT_EQ(ExecSql("SELECT count(*) FROM storage_test.items WHERE code = "
                    "'inf-version'")[0][0],
            "0");
}

// A row whose stored version is already infinite (written by SQL) gets a
// finite one on its first update, so a second update with the same read
// version is refused.
TEST_F(TableOpsTest, UpdateOfAnInfiniteVersionMakesItFinite) {
  ExecSql(
      "INSERT INTO storage_test.items (code, version) VALUES ('inf-stored', "
      "'infinity')");
  const ColumnValues update = {{Col("code"), std::string("inf-stored")},
                               {Col("small"), int64_t{1}},
                               {Col("version"), std::string("infinity")}};
  auto first = UpdateRow(*conn_, *items_, update);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(std::holds_alternative<Timestamp>(first->at(Col("version"))));
  auto second = UpdateRow(*conn_, *items_, update);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAborted)
      << second.status();
}

// char(n) returns "abc  " for the key "abc" and citext "Alice" for
// "ALICE": the row matched, so BatchGet must find it under the key asked.
TEST_F(TableOpsTest, PaddedAndCaseInsensitiveKeysAreFoundAsRequested) {
  const Entity* padded = catalog_->Find("padded");
  const Entity* folded = catalog_->Find("folded");
  ASSERT_NE(padded, nullptr);
  ASSERT_NE(folded, nullptr);
  auto p =
      FetchByKeys(*conn_, *padded, padded->primary_key, {"abc", "x  ", "nope"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->by_key.count("abc"), 1u);
  EXPECT_EQ(p->by_key.count("x  "), 1u);
  EXPECT_EQ(p->by_key.count("nope"), 0u);
  // Two spellings of one citext key: each is answered with the row.
  auto f = FetchByKeys(*conn_, *folded, folded->primary_key,
                       {"ALICE", "alice", "Bob"});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->by_key.count("ALICE"), 1u);
  EXPECT_EQ(f->by_key.at("ALICE").size(), 1u);
  EXPECT_EQ(f->by_key.count("alice"), 1u);
  EXPECT_EQ(f->by_key.count("Bob"), 1u);
  EXPECT_EQ(std::get<std::string>(f->by_key.at("Bob")[0][0]), "bob");
}

// Delete used to remove such a row and report it as not deleted.
TEST_F(TableOpsTest, DeleteReportsPaddedAndCaseInsensitiveKeysItDeleted) {
  ExecSql(
      "INSERT INTO storage_test.padded VALUES ('del', 3); "
      "INSERT INTO storage_test.folded VALUES ('Carol', 3)");
  auto p = DeleteRows(*conn_, *catalog_->Find("padded"),
                      {std::string("del"), std::string("gone")}, std::nullopt);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, std::vector<bool>({true, false}));
  auto f =
      DeleteRows(*conn_, *catalog_->Find("folded"),
                 {std::string("CAROL"), std::string("carol")}, std::nullopt);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f, std::vector<bool>({true, true}));
  EXPECT_EQ(ExecSql("SELECT count(*) FROM storage_test.folded WHERE code = "
                    "'carol'")[0][0],
            "0");
}

// More than 65,535 parameters used to reach libpq, whose refusal carries no
// SQLSTATE (INTERNAL); now the statement is refused before it is built.
TEST_F(TableOpsTest, StatementsBeyondTheParameterLimitAreInvalidArgument) {
  std::vector<ColumnValues> rows;
  for (int i = 0; i < 33000; ++i) {
    rows.push_back(
        {{Col("code"), "p" + std::to_string(i)}, {Col("small"), int64_t{1}}});
  }
  auto inserted = InsertRows(*conn_, *items_, rows);
  EXPECT_EQ(inserted.status().code(), absl::StatusCode::kInvalidArgument)
      << inserted.status();
  EXPECT_NE(inserted.status().message().find("65535"), absl::string_view::npos)
      << inserted.status();
}

// 42501 is the role's missing privilege, not a bad argument.
TEST_F(TableOpsTest, MissingPrivilegeIsPermissionDenied) {
  ExecSql(
      "DROP ROLE IF EXISTS rowgate_no_access; CREATE ROLE rowgate_no_access "
      "LOGIN");
  std::string url = TestDatabaseUrl();
  url.replace(url.find("postgres@"), 9, "rowgate_no_access@");
  Connection conn(url);
  // Refused while preparing (no USAGE on the schema)...
  auto schema = conn.Execute("SELECT code FROM storage_test.items", {});
  EXPECT_EQ(schema.status().code(), absl::StatusCode::kPermissionDenied)
      << schema.status();
  EXPECT_NE(schema.status().message().find("SQLSTATE 42501"),
            absl::string_view::npos)
      << schema.status();
  // ... and while executing (USAGE, but no SELECT on the table).
  ExecSql("GRANT USAGE ON SCHEMA storage_test TO rowgate_no_access");
  auto table = conn.Execute("SELECT code FROM storage_test.items", {});
  EXPECT_EQ(table.status().code(), absl::StatusCode::kPermissionDenied)
      << table.status();
  ExecSql(
      "REVOKE USAGE ON SCHEMA storage_test FROM rowgate_no_access; DROP ROLE "
      "rowgate_no_access");
}

// A refused login is final (FAILED_PRECONDITION), not "unreachable"
// (UNAVAILABLE, retried); the message never shows the password.
TEST_F(TableOpsTest, RefusedLoginIsFailedPreconditionWithoutThePassword) {
  std::string url = TestDatabaseUrl();
  url.replace(url.find("postgres@"), 9, "no_such_role:s3cret@");
  Connection conn(url);
  auto result = conn.Execute("SELECT 1", {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition)
      << result.status();
  EXPECT_NE(result.status().message().find("no_such_role"),
            absl::string_view::npos);
  EXPECT_EQ(result.status().message().find("s3cret"), absl::string_view::npos);
}

// Serialization failures and deadlocks tell the caller to retry (ABORTED),
// and the connection stays usable. libpqxx 6.4 throws them outside
// pqxx::sql_error; they used to come out as INTERNAL.
TEST_F(TableOpsTest,
       SerializationFailureAndDeadlockAreAbortedOnTheSameConnection) {
  auto backend = [&] {
    auto pid = conn_->Execute("SELECT pg_backend_pid()", {});
    EXPECT_TRUE(pid.ok()) << pid.status();
    return pid.ok() ? std::string(pid->text(0, 0)) : std::string();
  };
  const std::string before = backend();
  for (const char* errcode : {"serialization_failure", "deadlock_detected"}) {
    auto failed = conn_->Execute(
        absl::StrCat("DO $$BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '",
                     errcode, "'; END$$"),
        {});
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kAborted)
        << errcode << ": " << failed.status();
    EXPECT_EQ(backend(), before)
        << "the connection was dropped after " << errcode;
  }
}

TEST(PgErrorTest, MapsLimitsPrivilegesAndLoginsToTheirCodes) {
  EXPECT_EQ(StatusFromSqlState("54000", "statement too complex").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromSqlState("54011", "too many columns").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromSqlState("42501", "permission denied").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromSqlState("42601", "syntax error").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromSqlState("28P01", "password authentication").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ConnectFailureStatus("FATAL:  password authentication failed for "
                                 "user \"app\"")
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ConnectFailureStatus("could not connect to server: Connection "
                                 "refused")
                .code(),
            absl::StatusCode::kUnavailable);
  // A message quoting a huge value is bounded, keeping the SQLSTATE.
  const absl::Status long_one =
      StatusFromSqlState("22P02", std::string(100000, 'v'));
  EXPECT_LT(long_one.message().size(), 700u);
  EXPECT_NE(long_one.message().find("SQLSTATE 22P02"), absl::string_view::npos);
}

TEST_F(TableOpsTest, ReconnectsAfterTheBackendIsTerminated) {
  auto before = FetchByKeys(*conn_, *items_, items_->primary_key, {"dup"});
  ASSERT_TRUE(before.ok()) << before.status();
  const int pid = conn_->backend_pid();
  ASSERT_NE(pid, 0);
  ExecSql("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  auto during = FetchByKeys(*conn_, *items_, items_->primary_key, {"dup"});
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable)
      << during.status();
  auto after = FetchByKeys(*conn_, *items_, items_->primary_key, {"dup"});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(conn_->backend_pid(), pid);
}

TEST_F(TableOpsTest, UnreachableDatabaseIsUnavailableWithoutThePassword) {
  Connection nowhere(
      "postgresql://rowgate:s3cret@127.0.0.1:1/none?connect_timeout=2");
  auto result = nowhere.Execute("SELECT 1", {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message().find("s3cret"), absl::string_view::npos);
}

}  // namespace
}  // namespace rowgate::storage
