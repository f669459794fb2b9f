// Composite primary keys in storage (storage/composite_key.h): the canonical
// key text, the batch lookup and delete statements run against a real
// PostgreSQL, Update's key checks, and page tokens over the full key.
#include "storage/composite_key.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "storage/catalog.h"
#include "storage/page_token.h"
#include "storage/table_ops.h"
#include "tests/common/test_database.h"

namespace rowgate::storage {
namespace {

using rowgate::testing::ExecSql;
using rowgate::testing::TestDatabaseUrl;

TEST(CompositeKeyTextTest, EncodingIsUnambiguousAndRoundTrips) {
  // Parts holding the separators must not collide with other splits.
  const std::string a = EncodeCompositeKey({"1,2:3", "4"});
  const std::string b = EncodeCompositeKey({"1", "2:3,4"});
  EXPECT_NE(a, b);
  EXPECT_EQ(EncodeCompositeKey({"17", "1", "13"}), "2:17,1:1,2:13");
  for (const std::vector<std::string>& parts :
       std::vector<std::vector<std::string>>{
           {"1,2:3", "4"}, {"1", "2:3,4"}, {"", ""}, {"x", "", "y"}}) {
    absl::StatusOr<std::vector<std::string>> back =
        DecodeCompositeKey(EncodeCompositeKey(parts), parts.size());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, parts);
  }
  EXPECT_FALSE(DecodeCompositeKey("2:17,1:1", 3).ok());
  EXPECT_FALSE(DecodeCompositeKey("2:17,1:1,2:13", 2).ok());
  EXPECT_FALSE(DecodeCompositeKey("9:17", 1).ok());
  EXPECT_FALSE(DecodeCompositeKey("x:17", 1).ok());
}

class CompositeStatementsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      DROP SCHEMA IF EXISTS composite_test CASCADE;
      CREATE SCHEMA composite_test;
      CREATE TABLE composite_test.links (
        id bigint, a bigint, b bigint, PRIMARY KEY (id, a, b));
      INSERT INTO composite_test.links
        SELECT i, i % 3, i % 5 FROM generate_series(1, 20) i;
      CREATE TABLE composite_test.labelled (
        code char(4), n int, note text, PRIMARY KEY (code, n));
      INSERT INTO composite_test.labelled VALUES ('ab', 1, 'x'), ('ab', 2, 'y');
    )sql");
  }

  void SetUp() override {
    conn_ = std::make_unique<Connection>(TestDatabaseUrl());
    auto catalog = Catalog::Load(*conn_, "composite_test", "version");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *catalog;
    links_ = catalog_->Find("links");
    labelled_ = catalog_->Find("labelled");
    ASSERT_NE(links_, nullptr) << "a composite key is no reason to skip";
    ASSERT_NE(labelled_, nullptr);
  }

  std::string Key(const Entity& e, std::vector<Value> parts) {
    absl::StatusOr<std::string> key = CanonicalCompositeKey(e, parts);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : "";
  }

  std::unique_ptr<Connection> conn_;
  std::shared_ptr<const Catalog> catalog_;
  const Entity* links_ = nullptr;
  const Entity* labelled_ = nullptr;
};

TEST_F(CompositeStatementsTest, CatalogKeepsTheKeyColumnsInOrder) {
  ASSERT_EQ(links_->key_columns.size(), 3u);
  EXPECT_TRUE(links_->composite_key());
  EXPECT_EQ(links_->primary_key, -1);
  EXPECT_EQ(KeyColumnsText(*links_), "(id, a, b)");
  EXPECT_EQ(KeyColumnsText(*labelled_), "(code, n)");
}

TEST_F(CompositeStatementsTest, OneStatementLooksUpABatchOfKeys) {
  EXPECT_EQ(LookupSql(*links_, kCompositeKeyColumn),
            "SELECT \"id\", \"a\", \"b\" FROM \"composite_test\".\"links\" "
            "WHERE (\"id\", \"a\", \"b\") IN (SELECT * FROM "
            "unnest($1::\"pg_catalog\".\"int8\"[], "
            "$2::\"pg_catalog\".\"int8\"[], $3::\"pg_catalog\".\"int8\"[]))");
  const std::string seven = Key(*links_, {int64_t{7}, int64_t{1}, int64_t{2}});
  const std::string wrong = Key(*links_, {int64_t{7}, int64_t{1}, int64_t{3}});
  const std::string twenty =
      Key(*links_, {int64_t{20}, int64_t{2}, int64_t{0}});
  absl::StatusOr<KeyedRows> rows =
      FetchByKeys(*conn_, *links_, kCompositeKeyColumn, {seven, wrong, twenty});
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->by_key.size(), 2u);
  ASSERT_EQ(rows->by_key[seven].size(), 1u);
  EXPECT_EQ(std::get<int64_t>(rows->by_key[seven][0][0]), 7);
  EXPECT_EQ(rows->by_key.count(wrong), 0u);
  EXPECT_EQ(rows->by_key[twenty].size(), 1u);
}

// char(4) stores "ab  ": the row is labelled with the key asked.
TEST_F(CompositeStatementsTest, TextPartsMatchByTheColumnsOwnEquality) {
  EXPECT_TRUE(LookupLabelsRows(*labelled_, kCompositeKeyColumn));
  const std::string key = Key(*labelled_, {std::string("ab"), int64_t{2}});
  absl::StatusOr<KeyedRows> rows =
      FetchByKeys(*conn_, *labelled_, kCompositeKeyColumn, {key});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->by_key[key].size(), 1u);
  EXPECT_EQ(std::get<std::string>(rows->by_key[key][0][2]), "y");
}

TEST_F(CompositeStatementsTest, WrongArityAndNullPartsNameTheColumns) {
  absl::StatusOr<std::string> short_key =
      CanonicalCompositeKey(*links_, {int64_t{1}, int64_t{2}});
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_key.status().message().find("(id, a, b)"), std::string::npos);
  absl::StatusOr<std::string> null_part = CanonicalCompositeKey(
      *links_, {int64_t{1}, std::monostate(), int64_t{2}});
  EXPECT_NE(null_part.status().message().find("\"a\""), std::string::npos);

  absl::StatusOr<UpdatePlan> partial = UpdateStatement(
      *labelled_, {{0, std::string("ab")}, {2, std::string("z")}});
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("missing: n"), std::string::npos);
}

TEST_F(CompositeStatementsTest, UpdateAndDeleteTouchOnlyTheFullKeysRow) {
  absl::StatusOr<Row> row = UpdateRow(
      *conn_, *labelled_,
      {{0, std::string("ab")}, {1, int64_t{1}}, {2, std::string("changed")}});
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(std::get<std::string>((*row)[2]), "changed");
  EXPECT_EQ(
      ExecSql("SELECT note FROM composite_test.labelled WHERE n = 2")[0][0],
      "y");
  absl::StatusOr<Row> missing = UpdateRow(
      *conn_, *labelled_,
      {{0, std::string("zz")}, {1, int64_t{1}}, {2, std::string("x")}});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("labelled with (code, n) (zz, 1)"),
            std::string::npos)
      << missing.status();

  const std::string gone = Key(*links_, {int64_t{3}, int64_t{0}, int64_t{3}});
  const std::string absent = Key(*links_, {int64_t{3}, int64_t{0}, int64_t{4}});
  absl::StatusOr<std::vector<bool>> deleted =
      DeleteRowsForKeys(*conn_, *links_, {absent, gone}, std::nullopt);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, (std::vector<bool>{false, true}));
  EXPECT_EQ(ExecSql("SELECT count(*) FROM composite_test.links")[0][0], "19");
}

// The sort key ends with every key column, and its token walks the table.
TEST_F(CompositeStatementsTest, PageTokensCarryTheFullKey) {
  PageQuery query;
  query.limit = 4;
  query.order = {{links_->ColumnIndex("b"), false}};
  absl::StatusOr<PagePlan> plan = PageStatement(*links_, query);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->order.size(), 3u);  // b, then id and a (b is a key column)
  EXPECT_EQ(plan->order[1].column, links_->ColumnIndex("id"));
  EXPECT_EQ(plan->order[2].column, links_->ColumnIndex("a"));

  std::vector<int64_t> ids;
  for (int pages = 0; pages < 50; ++pages) {
    absl::StatusOr<PageResult> page = FetchPage(*conn_, *links_, query);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Row& r : page->rows) ids.push_back(std::get<int64_t>(r[0]));
    if (page->next_page_token.empty()) break;
    absl::StatusOr<PageCursor> cursor = DecodePageToken(page->next_page_token);
    ASSERT_TRUE(cursor.ok());
    EXPECT_EQ(cursor->last_sort_values.size(), 3u);
    query.page_token = page->next_page_token;
  }
  const auto expected =
      ExecSql("SELECT id FROM composite_test.links ORDER BY b, id, a");
  ASSERT_EQ(ids.size(), expected.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i], std::stoll(expected[i][0]));
  }
}

}  // namespace
}  // namespace rowgate::storage
