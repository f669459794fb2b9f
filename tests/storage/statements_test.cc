// Statement building (storage/statements.h), and what found wrong in it by
// tests/fuzz/fuzz_statements means against a real PostgreSQL.
#include "storage/statements.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "storage/catalog.h"
#include "storage/page_token.h"
#include "storage/table_ops.h"
#include "tests/common/test_database.h"

namespace rowgate::storage {
namespace {

using rowgate::testing::ExecSql;
using rowgate::testing::TestDatabaseUrl;

// The placeholders $n that `sql` uses.
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

// {1, ..., n}.
std::set<size_t> OneTo(size_t n) {
  std::set<size_t> out;
  for (size_t i = 1; i <= n; ++i) out.insert(i);
  return out;
}

class StatementsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      DROP SCHEMA IF EXISTS statements_test CASCADE;
      CREATE SCHEMA statements_test;
      CREATE TABLE statements_test.scores (id bigint PRIMARY KEY, score int);
      INSERT INTO statements_test.scores VALUES
        (1, NULL), (2, 7), (3, NULL), (4, 5), (5, NULL);
    )sql");
  }

  void SetUp() override {
    conn_ = std::make_unique<Connection>(TestDatabaseUrl());
    auto catalog = Catalog::Load(*conn_, "statements_test", "version");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *catalog;
    scores_ = catalog_->Find("scores");
    ASSERT_NE(scores_, nullptr);
  }

  std::unique_ptr<Connection> conn_;
  std::shared_ptr<const Catalog> catalog_;
  const Entity* scores_ = nullptr;
};

// A page token whose cursor holds a null (the last row's nullable sort
// column was NULL) bound a parameter for it that the SQL never used, and
// PostgreSQL refuses such a statement ("could not determine data type of
// parameter"): the next page could never be read.
TEST_F(StatementsTest, CursorWithANullBindsOnlyParametersTheSqlUses) {
  PageQuery query;
  query.order = {{scores_->ColumnIndex("score"), false}};
  query.limit = 1;
  PageCursor cursor;
  cursor.query_fingerprint = PageStatement(*scores_, query).value().fingerprint;
  cursor.last_sort_values = {std::monostate(), int64_t{3}};
  query.page_token = EncodePageToken(cursor);
  absl::StatusOr<PagePlan> plan = PageStatement(*scores_, query);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(Placeholders(plan->statement.sql),
            OneTo(plan->statement.params.size()))
      << plan->statement.sql;
}

// Paging one row at a time by a nullable column, ascending (NULLs last) and
// descending (NULLs first), visits every row once, across the NULLs.
TEST_F(StatementsTest, PagingByANullableColumnCrossesItsNulls) {
  for (bool descending : {false, true}) {
    PageQuery query;
    query.order = {{scores_->ColumnIndex("score"), descending}};
    query.limit = 1;
    std::vector<std::string> ids;
    for (int page = 0; page < 10; ++page) {
      absl::StatusOr<PageResult> result = FetchPage(*conn_, *scores_, query);
      ASSERT_TRUE(result.ok()) << "page " << page << ": " << result.status();
      for (const Row& row : result->rows) ids.push_back(KeyText(row[0]));
      if (result->next_page_token.empty()) break;
      query.page_token = result->next_page_token;
    }
    const std::vector<std::string> expected =
        descending ? std::vector<std::string>{"1", "3", "5", "2", "4"}
                   : std::vector<std::string>{"4", "2", "1", "3", "5"};
    EXPECT_EQ(ids, expected) << (descending ? "descending" : "ascending");
  }
}

}  // namespace
}  // namespace rowgate::storage
