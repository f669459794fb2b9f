// End-to-end: Page (keyset paging with filters, order and offset) against a
// real rowgate. Tests page over rows they created, found by a unique surname,
// except where the demo data is fixed (groups 13..16).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr int kMaxPages = 200;

v1::PageRequest PageRequest(const std::string& entity, int page_size,
                            std::vector<v1::Filter> filters = {}) {
  v1::PageRequest request;
  request.set_entity(entity);
  request.set_page_size(page_size);
  for (v1::Filter& filter : filters) *request.add_filters() = std::move(filter);
  return request;
}

v1::Filter SurnameIs(const std::string& surname) {
  return MakeFilter("surname", v1::Filter::EQUAL, Str(surname));
}

class PageTest : public SharedServerTest<PageTest> {
 protected:
  // Follows next_page_token from `request` to the end and returns every row.
  // Fails the test if a page is larger than the page size or a non-final
  // page is short.
  std::vector<v1::Row> ReadAllPages(v1::PageRequest request,
                                    int max_pages = kMaxPages) {
    std::vector<v1::Row> rows;
    for (int page = 0; page < max_pages; ++page) {
      v1::PageResponse response;
      grpc::Status status = client().Page(request, &response);
      EXPECT_THAT(status, IsOk()) << "page " << page;
      if (!status.ok()) return rows;
      EXPECT_LE(response.rows_size(), request.page_size());
      rows.insert(rows.end(), response.rows().begin(), response.rows().end());
      if (response.next_page_token().empty()) return rows;
      EXPECT_EQ(response.rows_size(), request.page_size())
          << "a page before the last is short";
      request.set_page_token(response.next_page_token());
    }
    ADD_FAILURE() << "paging did not end within " << max_pages << " pages";
    return rows;
  }

  // The ids `filter_sql` selects from users, ordered by `order_sql`.
  static std::vector<int64_t> SqlIds(const std::string& where_sql,
                                     const std::string& order_sql = "id") {
    std::vector<int64_t> ids;
    for (const auto& row : ExecSql("SELECT id FROM users WHERE " + where_sql +
                                   " ORDER BY " + order_sql)) {
      ids.push_back(std::stoll(row.at(0)));
    }
    return ids;
  }
};

// With no filter and no order, pages of 3 chain through the whole table in
// primary key order, each row once.
TEST_F(PageTest, WalksWholeTableInKeyOrder) {
  const std::vector<int64_t> expected = SqlIds("true");
  std::vector<v1::Row> rows = ReadAllPages(
      PageRequest("users", 3), static_cast<int>(expected.size()) / 3 + 2);
  EXPECT_THAT(IdsOf({rows.begin(), rows.end()}), ElementsAreArray(expected));
}

// page_size 0 means the default, 50.
TEST_F(PageTest, PageSizeZeroUsesDefaultOfFifty) {
  const std::string surname = UniqueTag("p0");
  const std::vector<int64_t> ids = InsertUsersBySql(surname, 51);
  v1::PageResponse response;
  ASSERT_THAT(
      client().Page(PageRequest("users", 0, {SurnameIs(surname)}), &response),
      IsOk());
  EXPECT_THAT(response.rows(), SizeIs(50));
  EXPECT_FALSE(response.next_page_token().empty());
}

TEST_F(PageTest, RejectsNegativePageSize) {
  v1::PageResponse response;
  EXPECT_THAT(client().Page(PageRequest("users", -1), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_F(PageTest, RejectsUnknownEntityNamingIt) {
  v1::PageResponse response;
  EXPECT_THAT(client().Page(PageRequest("no_such_entity", 3), &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no_such_entity")));
}

TEST_F(PageTest, RejectsUnknownFilterColumnNamingIt) {
  v1::PageResponse response;
  EXPECT_THAT(
      client().Page(PageRequest("users", 3,
                                {MakeFilter("no_such_column", v1::Filter::EQUAL,
                                            Int(1))}),
                    &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               HasSubstr("no_such_column")));
}

// Comparison filters on users this test made (externalId 1..6), ANDed.
TEST_F(PageTest, ComparisonFiltersAreAnded) {
  const std::string surname = UniqueTag("cmp");
  const std::vector<int64_t> ids = InsertUsersBySql(surname, 6);
  ASSERT_THAT(ids, SizeIs(6));
  auto page = [&](std::vector<v1::Filter> filters) {
    filters.push_back(SurnameIs(surname));
    std::vector<v1::Row> rows =
        ReadAllPages(PageRequest("users", 10, std::move(filters)));
    std::vector<int64_t> external_ids;
    for (const v1::Row& row : rows) {
      external_ids.push_back(Field(row, "externalId").int64_value());
    }
    return external_ids;
  };
  EXPECT_THAT(page({}), ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(page({MakeFilter("externalId", v1::Filter::EQUAL, Int(4))}),
              ElementsAre(4));
  EXPECT_THAT(page({MakeFilter("externalId", v1::Filter::NOT_EQUAL, Int(4))}),
              ElementsAre(1, 2, 3, 5, 6));
  EXPECT_THAT(page({MakeFilter("externalId", v1::Filter::LESS, Int(3))}),
              ElementsAre(1, 2));
  EXPECT_THAT(
      page({MakeFilter("externalId", v1::Filter::LESS_OR_EQUAL, Int(3))}),
      ElementsAre(1, 2, 3));
  EXPECT_THAT(page({MakeFilter("externalId", v1::Filter::GREATER, Int(4))}),
              ElementsAre(5, 6));
  EXPECT_THAT(
      page({MakeFilter("externalId", v1::Filter::GREATER_OR_EQUAL, Int(3)),
            MakeFilter("externalId", v1::Filter::NOT_EQUAL, Int(5))}),
      ElementsAre(3, 4, 6));
  EXPECT_THAT(page({InFilter("externalId", {Int(2), Int(5), Int(99)})}),
              ElementsAre(2, 5));
  EXPECT_THAT(page({MakeFilter("name", v1::Filter::EQUAL, Str("n0003"))}),
              ElementsAre(3));
}

// IS_NULL / IS_NOT_NULL on the demo groups: 13 and 14 have no entryYearId.
TEST_F(PageTest, NullFilters) {
  const v1::Filter demo_only =
      MakeFilter("id", v1::Filter::LESS_OR_EQUAL, Int(16));
  v1::PageResponse response;
  ASSERT_THAT(
      client().Page(PageRequest("groups", 10,
                                {MakeFilter("entryYearId", v1::Filter::IS_NULL),
                                 demo_only}),
                    &response),
      IsOk());
  EXPECT_THAT(IdsOf(response.rows()), ElementsAre(13, 14));
  EXPECT_TRUE(response.next_page_token().empty());
  ASSERT_THAT(
      client().Page(
          PageRequest(
              "groups", 10,
              {MakeFilter("entryYearId", v1::Filter::IS_NOT_NULL), demo_only}),
          &response),
      IsOk());
  EXPECT_THAT(IdsOf(response.rows()), ElementsAre(15, 16));
}

// order_by name descending, paged by 2: names never increase, ties are
// broken by the ascending primary key, and every row comes exactly once.
TEST_F(PageTest, OrdersByNameDescendingWithKeyTieBreak) {
  const std::string surname = UniqueTag("ord");
  const std::vector<int64_t> ids = InsertUsersBySql(surname, 8);
  ASSERT_THAT(ids, SizeIs(8));
  // Names b, a, c, b, a, c, b, a: ties of two and three.
  ExecSql(absl::StrCat(
      "UPDATE users SET name = (ARRAY['b','a','c'])[(\"externalId\" - 1) % 3 "
      "+ 1] WHERE surname = ",
      SqlQuote(surname)));
  v1::PageRequest request = PageRequest("users", 2, {SurnameIs(surname)});
  v1::OrderBy* order = request.add_order_by();
  order->set_column("name");
  order->set_descending(true);
  std::vector<v1::Row> rows = ReadAllPages(request);
  ASSERT_THAT(rows, SizeIs(8));
  std::vector<std::string> names;
  for (const v1::Row& row : rows)
    names.push_back(Field(row, "name").string_value());
  EXPECT_THAT(names, ElementsAre("c", "c", "b", "b", "b", "a", "a", "a"));
  // FetchPage appends the primary key as an ascending tie-break. ids[i] is
  // the user with externalId i + 1 (ids ascend with it), whose name is
  // b, a, c repeating: within each name, the ids ascend.
  EXPECT_THAT(IdsOf({rows.begin(), rows.end()}),
              ElementsAre(ids[2], ids[5],           // c
                          ids[0], ids[3], ids[6],   // b
                          ids[1], ids[4], ids[7]))  // a
      << "ties are not ordered by ascending primary key";
}

// Only the requested columns come back from a page too.
TEST_F(PageTest, ReturnsOnlyRequestedColumns) {
  const std::string surname = UniqueTag("proj");
  InsertUsersBySql(surname, 3);
  v1::PageRequest request = PageRequest("users", 2, {SurnameIs(surname)});
  request.add_columns("name");
  v1::PageResponse response;
  ASSERT_THAT(client().Page(request, &response), IsOk());
  ASSERT_THAT(response.rows(), SizeIs(2));
  EXPECT_THAT(FieldNames(response.rows(0)), ElementsAre("name"));
  EXPECT_EQ(Field(response.rows(0), "name").string_value(), "n0001");
  // The token still leads on although the key column was not returned.
  request.set_page_token(response.next_page_token());
  ASSERT_THAT(client().Page(request, &response), IsOk());
  ASSERT_THAT(response.rows(), SizeIs(1));
  EXPECT_EQ(Field(response.rows(0), "name").string_value(), "n0003");
}

TEST_F(PageTest, RejectsMalformedToken) {
  v1::PageRequest request = PageRequest("users", 3);
  request.set_page_token("not a page token");
  v1::PageResponse response;
  EXPECT_THAT(client().Page(request, &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
}

// A token belongs to its entity, filters and order.
TEST_F(PageTest, RejectsTokenReusedWithOtherQuery) {
  const std::string surname = UniqueTag("tok");
  InsertUsersBySql(surname, 4);
  v1::PageRequest request = PageRequest("users", 2, {SurnameIs(surname)});
  v1::PageResponse response;
  ASSERT_THAT(client().Page(request, &response), IsOk());
  ASSERT_THAT(response.next_page_token(), Not(IsEmpty()));
  const std::string token = response.next_page_token();

  v1::PageRequest other_filter =
      PageRequest("users", 2, {SurnameIs(surname + "x")});
  other_filter.set_page_token(token);
  EXPECT_THAT(client().Page(other_filter, &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT))
      << "other filter";

  v1::PageRequest other_entity = PageRequest("groups", 2);
  other_entity.set_page_token(token);
  EXPECT_THAT(client().Page(other_entity, &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT))
      << "other entity";

  v1::PageRequest other_order = request;
  other_order.set_page_token(token);
  other_order.add_order_by()->set_column("name");
  EXPECT_THAT(client().Page(other_order, &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT))
      << "other order";

  // The same query still accepts it.
  request.set_page_token(token);
  ASSERT_THAT(client().Page(request, &response), IsOk());
  EXPECT_THAT(response.rows(), SizeIs(2));
}

// offset skips rows (the notebook's page(skip, limit)); not with a token.
TEST_F(PageTest, OffsetSkipsRows) {
  const std::string surname = UniqueTag("off");
  const std::vector<int64_t> ids = InsertUsersBySql(surname, 6);
  ASSERT_THAT(ids, SizeIs(6));
  v1::PageRequest request = PageRequest("users", 3, {SurnameIs(surname)});
  request.set_offset(2);
  v1::PageResponse response;
  ASSERT_THAT(client().Page(request, &response), IsOk());
  EXPECT_THAT(IdsOf(response.rows()), ElementsAre(ids[2], ids[3], ids[4]));

  request.set_offset(5);
  ASSERT_THAT(client().Page(request, &response), IsOk());
  EXPECT_THAT(IdsOf(response.rows()), ElementsAre(ids[5]));

  v1::PageRequest first = PageRequest("users", 3, {SurnameIs(surname)});
  ASSERT_THAT(client().Page(first, &response), IsOk());
  ASSERT_THAT(response.next_page_token(), Not(IsEmpty()));
  first.set_page_token(response.next_page_token());
  first.set_offset(1);
  EXPECT_THAT(client().Page(first, &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT))
      << "offset with page_token";
}

// The notebook's problem: rows inserted while paging, before and after the
// position reached, neither skip nor repeat a row that existed before
// paging began. Once in key order (new rows with lower and higher ids), once
// ordered by name (new names sorting first).
TEST_F(PageTest, ConcurrentInsertsNeitherSkipNorRepeatRows) {
  for (bool by_name : {false, true}) {
    SCOPED_TRACE(by_name ? "ordered by name" : "ordered by key");
    const std::string surname = UniqueTag("nb");
    const std::vector<int64_t> existing = InsertUsersBySql(surname, 10, "m");
    ASSERT_THAT(existing, SizeIs(10));
    v1::PageRequest request = PageRequest("users", 3, {SurnameIs(surname)});
    if (by_name) request.add_order_by()->set_column("name");
    std::map<int64_t, int> seen;
    for (int page = 0; page < kMaxPages; ++page) {
      v1::PageResponse response;
      ASSERT_THAT(client().Page(request, &response), IsOk()) << "page " << page;
      for (const v1::Row& row : response.rows()) ++seen[IdOf(row)];
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
      // Between pages: one row sorting before everything (a lower id, or a
      // name before "m"), and one with a default (higher) id.
      client().MustInsert("users",
                          {MakeRow({{"id", Int(-NextSequenceValue())},
                                    {"name", Str(absl::StrCat("a", page))},
                                    {"surname", Str(surname)}}),
                           MakeRow({{"name", Str(absl::StrCat("z", page))},
                                    {"surname", Str(surname)}})});
    }
    for (int64_t id : existing) {
      EXPECT_EQ(seen[id], 1) << "pre-existing row " << id;
    }
    for (const auto& [id, count] : seen) {
      EXPECT_EQ(count, 1) << "row " << id << " seen " << count << " times";
    }
  }
}

// --page_size_cap lowers larger page sizes.
TEST(PageCapTest, PageSizeAboveCapIsLoweredToCap) {
  auto server = RowgateProcess::Start({"--page_size_cap=4"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  v1::PageResponse response;
  ASSERT_THAT(client.Page(PageRequest("users", 100), &response), IsOk());
  EXPECT_EQ(response.rows_size(), 4);
  EXPECT_FALSE(response.next_page_token().empty());
  ASSERT_THAT(client.Page(PageRequest("users", 0), &response), IsOk());
  EXPECT_EQ(response.rows_size(), 4)
      << "page_size 0 (the default, 50) must be capped too: the cap is the "
         "largest page a Page call returns";
}

}  // namespace
}  // namespace rowgate::e2e
