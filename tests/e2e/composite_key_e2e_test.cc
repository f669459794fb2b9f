// Composite primary keys end to end (issue 10): the notebook's users_groups
// (id, user_id, group_id) and a table with a text part and a version column
// (schema composite_e2e), served by the real rowgate over the real Postgres:
// BatchGet, Update, Delete and Page tokens by the full key, DescribeEntity's
// key columns, refusals of partial keys, and the loader merging concurrent
// composite lookups into one query.
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::rowgate::testing::TestDatabaseUrl;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;

class CompositeKeyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      DROP SCHEMA IF EXISTS composite_e2e CASCADE;
      CREATE SCHEMA composite_e2e;
      CREATE TABLE composite_e2e.enrollments (
        student bigint, term char(6), grade int,
        lastchange timestamp DEFAULT timezone('UTC', now()),
        PRIMARY KEY (student, term));
    )sql");
    // Links are made for a user of this suite's own, so the demo users'
    // groups (which other tests and the examples read) stay as seeded.
    user_ = InsertUsersBySql(UniqueTag("composite"), 1)[0];
    demo_ = RowgateProcess::Start().release();
    enrollments_ = RowgateProcess::Start({"--schema=composite_e2e"}).release();
  }
  static void TearDownTestSuite() {
    ExecSql(absl::StrCat("DELETE FROM users WHERE id = ", user_));
    delete demo_;
    delete enrollments_;
    demo_ = enrollments_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(demo_, nullptr);
    ASSERT_NE(enrollments_, nullptr);
  }

  // A new users_groups link (the suite's user, group 13) inserted by SQL:
  // its key.
  static std::vector<int64_t> NewLink() {
    const auto row = ExecSql(
        absl::StrCat("INSERT INTO users_groups (user_id, group_id) VALUES (",
                     user_, ", 13) RETURNING id, user_id, group_id"))[0];
    return {std::stoll(row[0]), std::stoll(row[1]), std::stoll(row[2])};
  }
  static v1::Value Key(const std::vector<int64_t>& k) {
    return CompositeKey({k[0], k[1], k[2]});
  }

  static inline int64_t user_ = 0;
  static inline RowgateProcess* demo_ = nullptr;
  static inline RowgateProcess* enrollments_ = nullptr;
};

TEST_F(CompositeKeyTest, DescribeListsTheKeyColumnsInOrder) {
  Client client(demo_->NewChannel());
  v1::DescribeEntityRequest request;
  request.set_entity("users_groups");
  v1::EntityDescription link;
  auto context = NewContext();
  ASSERT_THAT(client.data()->DescribeEntity(context.get(), request, &link),
              IsOk());
  EXPECT_THAT(link.primary_key_columns(),
              ElementsAre("id", "user_id", "group_id"));
  EXPECT_EQ(link.primary_key(), "");  // no one column is the key

  request.set_entity("users");
  v1::EntityDescription users;
  context = NewContext();
  ASSERT_THAT(client.data()->DescribeEntity(context.get(), request, &users),
              IsOk());
  EXPECT_EQ(users.primary_key(), "id");
  EXPECT_THAT(users.primary_key_columns(), ElementsAre("id"));
}

// Keys answered in request order, duplicates each answered, a missing one
// not found, every key echoed as sent.
TEST_F(CompositeKeyTest, BatchGetByTheFullKeyAnswersInRequestOrder) {
  Client client(demo_->NewChannel());
  const std::vector<int64_t> a = NewLink(), b = NewLink();
  v1::BatchGetResponse response;
  ASSERT_THAT(client.BatchGet(
                  BatchGetRequest("users_groups",
                                  {Key(b), Key({a[0], 2, 13}), Key(a), Key(b)}),
                  &response),
              IsOk());
  ASSERT_THAT(response.results(), SizeIs(4));
  EXPECT_TRUE(response.results(0).found());
  EXPECT_FALSE(response.results(1).found());
  EXPECT_TRUE(response.results(2).found());
  EXPECT_TRUE(response.results(3).found());
  ASSERT_THAT(response.results(0).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(response.results(0).rows(0)), b[0]);
  EXPECT_EQ(IdOf(response.results(2).rows(0)), a[0]);
  EXPECT_EQ(IdOf(response.results(3).rows(0)), b[0]);
  EXPECT_EQ(response.results(1).key().ShortDebugString(),
            Key({a[0], 2, 13}).ShortDebugString());
}

TEST_F(CompositeKeyTest, PartialKeysAndWrongAritiesNameTheKeyColumns) {
  Client client(demo_->NewChannel());
  v1::BatchGetResponse got;
  EXPECT_THAT(
      client.BatchGet(BatchGetRequest("users_groups", {CompositeKey({17, 1})}),
                      &got),
      StatusIs(kInvalid, HasSubstr("(id, user_id, group_id): a key needs 3 "
                                   "values in that order, this one has 2")));
  EXPECT_THAT(client.BatchGet(BatchGetRequest("users_groups",
                                              {CompositeKey({17, 1, 13, 4})}),
                              &got),
              StatusIs(kInvalid, HasSubstr("this one has 4")));
  EXPECT_THAT(
      client.BatchGet(BatchGetRequest("users_groups", {Int(17)}), &got),
      StatusIs(kInvalid, HasSubstr("a key is a list_value of 3 values")));
  // A list for a one-column key, and a null part.
  EXPECT_THAT(
      client.BatchGet(BatchGetRequest("users", {CompositeKey({1, 2})}), &got),
      StatusIs(kInvalid, HasSubstr("list_value")));
  EXPECT_THAT(
      client.BatchGet(
          BatchGetRequest("users_groups", {CompositeKey(std::vector<v1::Value>{
                                              Int(17), Null(), Int(13)})}),
          &got),
      StatusIs(kInvalid, HasSubstr("\"user_id\" is null")));

  v1::UpdateRequest update;
  update.set_entity("users_groups");
  *update.mutable_row() = MakeRow({{"id", Int(17)}, {"user_id", Int(1)}});
  v1::UpdateResponse updated;
  EXPECT_THAT(client.Update(update, &updated),
              StatusIs(kInvalid, HasSubstr("missing: group_id")));

  v1::DeleteRequest del;
  del.set_entity("users_groups");
  *del.add_keys() = CompositeKey({17, 1});
  v1::DeleteResponse deleted;
  EXPECT_THAT(client.Delete(del, &deleted),
              StatusIs(kInvalid, HasSubstr("(id, user_id, group_id)")));
  EXPECT_EQ(ExecSql("SELECT count(*) FROM users_groups WHERE id = 17")[0][0],
            "1");
}

TEST_F(CompositeKeyTest, DeleteByTheFullKeyReportsWhichKeysWent) {
  Client client(demo_->NewChannel());
  const std::vector<int64_t> a = NewLink();
  v1::DeleteRequest del;
  del.set_entity("users_groups");
  *del.add_keys() = Key({a[0], a[1], 14});  // wrong group: not this row
  *del.add_keys() = Key(a);
  v1::DeleteResponse deleted;
  ASSERT_THAT(client.Delete(del, &deleted), IsOk());
  ASSERT_THAT(deleted.deleted_keys(), SizeIs(1));
  EXPECT_EQ(deleted.deleted_keys(0).ShortDebugString(),
            Key(a).ShortDebugString());
  EXPECT_EQ(ExecSql(absl::StrCat(
                "SELECT count(*) FROM users_groups WHERE id = ", a[0]))[0][0],
            "0");
}

// A key with a char(6) part (stored padded) and a version column: lookups
// match the padded text, Update and Delete check the version by the full
// key.
TEST_F(CompositeKeyTest, UpdateAndDeleteByTheFullKeyCheckTheVersion) {
  Client client(enrollments_->NewChannel());
  const int64_t student = NextSequenceValue();
  std::vector<v1::Row> stored =
      client.MustInsert("enrollments", {MakeRow({{"student", Int(student)},
                                                 {"term", Str("fall")},
                                                 {"grade", Int(1)}}),
                                        MakeRow({{"student", Int(student)},
                                                 {"term", Str("spring")},
                                                 {"grade", Int(2)}})});
  ASSERT_THAT(stored, SizeIs(2));
  const v1::Value fall =
      CompositeKey(std::vector<v1::Value>{Int(student), Str("fall")});

  v1::BatchGetResponse got;
  ASSERT_THAT(client.BatchGet(BatchGetRequest("enrollments", {fall}), &got),
              IsOk());
  ASSERT_THAT(got.results(0).rows(), SizeIs(1));
  EXPECT_EQ(Field(got.results(0).rows(0), "grade").int64_value(), 1);

  v1::UpdateRequest update;
  update.set_entity("enrollments");
  *update.mutable_row() =
      MakeRow({{"student", Int(student)},
               {"term", Str("fall")},
               {"grade", Int(5)},
               {"lastchange", Field(stored[0], "lastchange")}});
  v1::UpdateResponse updated;
  ASSERT_THAT(client.Update(update, &updated), IsOk());
  EXPECT_EQ(Field(updated.row(), "grade").int64_value(), 5);
  // The same version again is stale now, naming the full key.
  EXPECT_THAT(client.Update(update, &updated),
              StatusIs(grpc::StatusCode::ABORTED,
                       HasSubstr("enrollments with (student, term)")));
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT grade FROM composite_e2e.enrollments "
                                 "WHERE student = ",
                                 student, " AND term = 'spring'"))[0][0],
            "2");

  v1::DeleteRequest del;
  del.set_entity("enrollments");
  *del.add_keys() = fall;
  *del.mutable_expected_version() = Field(stored[0], "lastchange");
  v1::DeleteResponse deleted;
  EXPECT_THAT(client.Delete(del, &deleted),
              StatusIs(grpc::StatusCode::ABORTED));
  *del.mutable_expected_version() = Field(updated.row(), "lastchange");
  ASSERT_THAT(client.Delete(del, &deleted), IsOk());
  EXPECT_THAT(deleted.deleted_keys(), SizeIs(1));
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT count(*) FROM "
                                 "composite_e2e.enrollments WHERE student = ",
                                 student))[0][0],
            "1");
}

// Pages of 3 walk every link exactly once, in key order or in user order
// (the key's columns break the ties), while the tokens carry the full key.
TEST_F(CompositeKeyTest, PageTokensWalkEveryRowByTheFullKey) {
  Client client(demo_->NewChannel());
  NewLink();
  NewLink();  // two links with equal (user_id, group_id): ties to break
  for (const bool by_user : {false, true}) {
    SCOPED_TRACE(by_user ? "order by user_id" : "key order");
    const auto expected = ExecSql(
        by_user ? "SELECT id FROM users_groups ORDER BY user_id, id, group_id"
                : "SELECT id FROM users_groups ORDER BY id, user_id, group_id");
    std::vector<int64_t> seen;
    v1::PageRequest request;
    request.set_entity("users_groups");
    request.set_page_size(3);
    if (by_user) request.add_order_by()->set_column("user_id");
    for (int pages = 0; pages < 1000; ++pages) {
      v1::PageResponse page;
      ASSERT_THAT(client.Page(request, &page), IsOk());
      for (const v1::Row& row : page.rows()) seen.push_back(IdOf(row));
      if (page.next_page_token().empty()) break;
      request.set_page_token(page.next_page_token());
    }
    ASSERT_EQ(seen.size(), expected.size());
    for (size_t i = 0; i < seen.size(); ++i) {
      EXPECT_EQ(seen[i], std::stoll(expected[i][0])) << "row " << i;
    }
  }
}

// With the only connection held behind a lock, composite lookups from many
// callers gather and leave together: at most 2 queries (the one blocked,
// then everything that arrived meanwhile; 1 when every caller arrived
// before the worker took the first batch).
TEST(CompositeKeyLoaderTest, ConcurrentCompositeLookupsMergeIntoOneQuery) {
  auto server = RowgateProcess::Start({"--pool_size=1"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  const std::string lookup = LookupStatement("users_groups");
  ASSERT_FALSE(lookup.empty());
  const auto links =
      ExecSql("SELECT id, user_id, group_id FROM users_groups ORDER BY id");
  ASSERT_GE(links.size(), 8u);
  const long long before = StatementCallsExactly(lookup);
  const uint64_t requests_before = client.MustGetLoaderStats().requests();

  auto connection = std::make_unique<pqxx::connection>(TestDatabaseUrl());
  auto lock = std::make_unique<pqxx::work>(*connection);
  lock->exec("LOCK TABLE users_groups IN ACCESS EXCLUSIVE MODE");
  constexpr int kCallers = 16;
  std::vector<grpc::Status> statuses(kCallers);
  std::vector<v1::BatchGetResponse> responses(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      const auto& link = links[i % links.size()];
      statuses[i] = client.BatchGet(
          BatchGetRequest(
              "users_groups",
              {CompositeKey({std::stoll(link[0]), std::stoll(link[1]),
                             std::stoll(link[2])})}),
          &responses[i]);
    });
  }
  // Every caller's lookup has reached the loader.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (client.MustGetLoaderStats().requests() - requests_before < kCallers &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  lock->abort();
  for (std::thread& t : callers) t.join();
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_THAT(statuses[i], IsOk());
    ASSERT_TRUE(responses[i].results(0).found()) << "caller " << i;
    EXPECT_EQ(IdOf(responses[i].results(0).rows(0)),
              std::stoll(links[i % links.size()][0]));
  }
  const long long queries = StatementCallsExactly(lookup) - before;
  std::cout << "[ composite] " << kCallers << " callers -> " << queries
            << " Postgres queries" << std::endl;
  EXPECT_GE(queries, 1);
  EXPECT_LE(queries, 2);
}

}  // namespace
}  // namespace rowgate::e2e
