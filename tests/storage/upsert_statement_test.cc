// The upsert builder (storage/upsert_statement.h), without a database: the
// conflict target comes only from the catalog, values only as parameters,
// and the statement's shape is the one UpsertRows reads.
#include "storage/upsert_statement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rowgate::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Column MakeColumn(std::string name, std::string sql_type, ColumnType type) {
  Column c;
  c.quoted_name = QuoteIdentifier(name);
  c.name = std::move(name);
  c.type_name = sql_type;
  c.sql_type = std::move(sql_type);
  c.type = type;
  return c;
}

// items(id bigint PK, sku text UNIQUE "items_sku_key", name text,
// lastchange timestamp: the version column).
std::shared_ptr<const Catalog> ItemsCatalog() {
  Entity e;
  e.name = "items";
  e.qualified_name = "\"s\".\"items\"";
  e.columns = {MakeColumn("id", "bigint", ColumnType::kInt64),
               MakeColumn("sku", "text", ColumnType::kText),
               MakeColumn("name", "text", ColumnType::kText),
               MakeColumn("lastchange", "timestamp", ColumnType::kTimestamp)};
  e.primary_key = 0;
  e.version_column = 3;
  e.unique_keys = {UniqueKey{"items_sku_key", {1}}};
  return Catalog::FromEntities({std::move(e)});
}

std::set<size_t> Placeholders(const std::string& sql) {
  std::set<size_t> used;
  for (size_t i = sql.find('$'); i != std::string::npos;
       i = sql.find('$', i + 1)) {
    size_t n = 0;
    for (size_t j = i + 1; j < sql.size() && sql[j] >= '0' && sql[j] <= '9';
         ++j) {
      n = n * 10 + (sql[j] - '0');
    }
    used.insert(n);
  }
  return used;
}

std::set<size_t> OneTo(size_t n) {
  std::set<size_t> out;
  for (size_t i = 1; i <= n; ++i) out.insert(i);
  return out;
}

class UpsertStatementTest : public ::testing::Test {
 protected:
  std::shared_ptr<const Catalog> catalog_ = ItemsCatalog();
  const Entity& items_ = *catalog_->Find("items");
};

TEST_F(UpsertStatementTest,
       DoUpdateOnThePrimaryKeySetsNamedColumnsAndMovesTheVersion) {
  absl::StatusOr<ConflictSpec> spec =
      ResolveConflict(items_, ConflictAction::kDoUpdate, "", {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->target, std::vector<int>({0}));
  absl::StatusOr<UpsertPlan> plan =
      UpsertStatement(items_,
                      {{{0, Value(int64_t{1})}, {2, Value(std::string("a"))}},
                       {{0, Value(int64_t{2})}, {2, Value(std::string("b"))}}},
                      *spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const std::string& sql = plan->statement.sql;
  EXPECT_EQ(sql,
            "INSERT INTO \"s\".\"items\" AS rowgate_t (\"id\", \"name\") "
            "VALUES ($1::bigint, $2::text), ($3::bigint, $4::text) ON "
            "CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\", "
            "\"lastchange\" = CASE WHEN isfinite(rowgate_t.\"lastchange\") "
            "THEN GREATEST(timezone('UTC', clock_timestamp()), "
            "rowgate_t.\"lastchange\" + interval '1 microsecond') ELSE "
            "timezone('UTC', clock_timestamp()) END RETURNING \"id\", "
            "\"sku\", \"name\", \"lastchange\", (rowgate_t.xmax = 0)");
  EXPECT_EQ(plan->statement.params.size(), 4u);
  EXPECT_EQ(Placeholders(sql), OneTo(4));
  EXPECT_EQ(plan->action, ConflictAction::kDoUpdate);
}

// A named constraint becomes its catalogued columns: the client's string is
// only looked up, never spliced.
TEST_F(UpsertStatementTest, NamedConstraintTargetsItsColumns) {
  absl::StatusOr<ConflictSpec> spec =
      ResolveConflict(items_, ConflictAction::kDoUpdate, "items_sku_key", {2});
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<UpsertPlan> plan = UpsertStatement(
      items_, {{{1, Value(std::string("X-1"))}, {2, Value(std::string("n"))}}},
      *spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->statement.sql,
              HasSubstr("ON CONFLICT (\"sku\") DO UPDATE SET \"name\" = "
                        "EXCLUDED.\"name\", \"lastchange\" = "));
  EXPECT_THAT(plan->statement.sql, Not(HasSubstr("items_sku_key")));
  ASSERT_EQ(plan->target_texts.size(), 1u);
  EXPECT_EQ(plan->target_texts[0], std::vector<std::string>({"X-1"}));
}

TEST_F(UpsertStatementTest, UnknownConstraintIsRefusedByName) {
  absl::StatusOr<ConflictSpec> spec = ResolveConflict(
      items_, ConflictAction::kDoNothing, "x\"; DROP TABLE items; --", {});
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spec.status().message(),
              HasSubstr("no unique constraint \"x\"; DROP TABLE items; --\""));
  EXPECT_THAT(spec.status().message(), HasSubstr("items_sku_key"));
}

TEST_F(UpsertStatementTest,
       VersionTargetAndUpdateColumnsWithDoNothingAreRefused) {
  EXPECT_THAT(ResolveConflict(items_, ConflictAction::kDoUpdate, "", {3})
                  .status()
                  .message(),
              HasSubstr("version column"));
  EXPECT_THAT(
      ResolveConflict(items_, ConflictAction::kDoUpdate, "items_sku_key", {1})
          .status()
          .message(),
      HasSubstr("conflict target"));
  EXPECT_EQ(ResolveConflict(items_, ConflictAction::kDoNothing, "", {2})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// DO NOTHING: one INSERT per row in a CTE, tagged with its ordinal; the
// stored row is read back only for rows that carry the whole target.
TEST_F(UpsertStatementTest,
       DoNothingInsertsEachRowInItsOwnCteAndReadsTheStoredRow) {
  absl::StatusOr<ConflictSpec> spec =
      ResolveConflict(items_, ConflictAction::kDoNothing, "items_sku_key", {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<UpsertPlan> plan = UpsertStatement(
      items_,
      {{{1, Value(std::string("A"))}, {2, Value(std::string("a"))}},
       {{2, Value(std::string("no sku"))}}},
      *spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(
      plan->statement.sql,
      "WITH rowgate_i0 AS (INSERT INTO \"s\".\"items\" (\"sku\", \"name\") "
      "VALUES ($1::text, $2::text) ON CONFLICT (\"sku\") DO NOTHING "
      "RETURNING \"id\", \"sku\", \"name\", \"lastchange\"), rowgate_i1 AS "
      "(INSERT INTO \"s\".\"items\" (\"name\") VALUES ($3::text) ON "
      "CONFLICT (\"sku\") DO NOTHING RETURNING \"id\", \"sku\", \"name\", "
      "\"lastchange\") SELECT \"id\", \"sku\", \"name\", \"lastchange\", 0, "
      "true FROM rowgate_i0 UNION ALL SELECT \"id\", \"sku\", \"name\", "
      "\"lastchange\", 0, false FROM \"s\".\"items\" WHERE \"sku\" = "
      "$1::text UNION ALL SELECT \"id\", \"sku\", \"name\", \"lastchange\", "
      "1, true FROM rowgate_i1");
  EXPECT_EQ(Placeholders(plan->statement.sql), OneTo(3));
  ASSERT_EQ(plan->target_texts.size(), 2u);
  EXPECT_TRUE(plan->target_texts[0].has_value());
  EXPECT_FALSE(plan->target_texts[1].has_value());
}

TEST_F(UpsertStatementTest, NothingToUpdateWithoutAVersionColumnIsRefused) {
  Entity e = items_;
  e.version_column = -1;
  auto catalog = Catalog::FromEntities({std::move(e)});
  const Entity& plain = *catalog->Find("items");
  absl::StatusOr<ConflictSpec> spec =
      ResolveConflict(plain, ConflictAction::kDoUpdate, "", {});
  ASSERT_TRUE(spec.ok());
  absl::StatusOr<UpsertPlan> plan =
      UpsertStatement(plain, {{{0, Value(int64_t{1})}}}, *spec);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("use DO_NOTHING"));
}

TEST_F(UpsertStatementTest, ValuesOfTheWrongKindNameTheColumn) {
  absl::StatusOr<ConflictSpec> spec =
      ResolveConflict(items_, ConflictAction::kDoUpdate, "", {});
  ASSERT_TRUE(spec.ok());
  absl::StatusOr<UpsertPlan> plan =
      UpsertStatement(items_, {{{0, Value(std::string("one"))}}}, *spec);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("id"));
}

}  // namespace
}  // namespace rowgate::storage
