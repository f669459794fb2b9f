// End-to-end: ListEntities and DescribeEntity over the demo schema, and the
// server process's own lifecycle.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

class SchemaTest : public SharedServerTest<SchemaTest> {
 protected:
  v1::EntityDescription Describe(const std::string& entity) {
    v1::DescribeEntityRequest request;
    request.set_entity(entity);
    v1::EntityDescription description;
    EXPECT_THAT(client().data()->DescribeEntity(NewContext().get(), request,
                                                &description),
                IsOk())
        << entity;
    return description;
  }

  // The column called `name`, failing the test if there is none.
  static v1::ColumnDescription Column(const v1::EntityDescription& entity,
                                      const std::string& name) {
    for (const v1::ColumnDescription& column : entity.columns()) {
      if (column.name() == name) return column;
    }
    ADD_FAILURE() << entity.name() << " has no column " << name << ": "
                  << entity.ShortDebugString();
    return v1::ColumnDescription();
  }
};

// Other test binaries may add tables to the shared test database, so the
// demo tables must be there, not alone.
TEST_F(SchemaTest, ListEntitiesIncludesDemoTables) {
  v1::ListEntitiesResponse response;
  ASSERT_THAT(client().data()->ListEntities(
                  NewContext().get(), v1::ListEntitiesRequest(), &response),
              IsOk());
  std::vector<std::string> names;
  for (const v1::EntityDescription& entity : response.entities()) {
    names.push_back(entity.name());
    if (entity.name() == "users") {
      EXPECT_EQ(entity.primary_key(), "id");
      EXPECT_EQ(entity.version_column(), "lastchange");
    }
  }
  EXPECT_THAT(names,
              IsSupersetOf({"users", "groups", "grouptypes", "users_groups"}));
}

TEST_F(SchemaTest, DescribeUsersGivesKeyTypesNullabilityAndVersion) {
  const v1::EntityDescription users = Describe("users");
  EXPECT_EQ(users.name(), "users");
  EXPECT_EQ(users.primary_key(), "id");
  EXPECT_EQ(users.version_column(), "lastchange");
  EXPECT_EQ(users.columns_size(), 6);
  EXPECT_TRUE(users.foreign_keys().empty());

  const v1::ColumnDescription id = Column(users, "id");
  EXPECT_EQ(id.type(), "bigint");
  EXPECT_EQ(id.value_kind(), "int64_value");
  EXPECT_FALSE(id.nullable());
  EXPECT_TRUE(id.has_default());
  EXPECT_TRUE(id.writable());

  const v1::ColumnDescription name = Column(users, "name");
  EXPECT_EQ(name.type(), "character varying");
  EXPECT_EQ(name.value_kind(), "string_value");
  EXPECT_TRUE(name.nullable());
  EXPECT_FALSE(name.has_default());

  const v1::ColumnDescription lastchange = Column(users, "lastchange");
  EXPECT_EQ(lastchange.type(), "timestamp without time zone");
  EXPECT_EQ(lastchange.value_kind(), "timestamp_value");
  EXPECT_TRUE(lastchange.has_default());

  const v1::ColumnDescription external_id = Column(users, "externalId");
  EXPECT_EQ(external_id.type(), "bigint");
  EXPECT_TRUE(external_id.nullable());
}

TEST_F(SchemaTest, DescribeGroupsGivesForeignKeyToGrouptypes) {
  const v1::EntityDescription groups = Describe("groups");
  EXPECT_EQ(groups.primary_key(), "id");
  EXPECT_EQ(groups.version_column(), "lastchange");
  ASSERT_EQ(groups.foreign_keys_size(), 1) << groups.ShortDebugString();
  EXPECT_EQ(groups.foreign_keys(0).column(), "grouptype_id");
  EXPECT_EQ(groups.foreign_keys(0).references_entity(), "grouptypes");
  EXPECT_EQ(groups.foreign_keys(0).references_column(), "id");
  EXPECT_EQ(Column(groups, "entryYearId").type(), "integer");
  EXPECT_EQ(Column(groups, "entryYearId").value_kind(), "int64_value");
}

TEST_F(SchemaTest, DescribeLinkTableGivesBothForeignKeys) {
  const v1::EntityDescription link = Describe("users_groups");
  std::vector<std::string> fks;
  for (const v1::ForeignKey& fk : link.foreign_keys()) {
    fks.push_back(fk.column() + "->" + fk.references_entity() + "." +
                  fk.references_column());
  }
  EXPECT_THAT(fks, ::testing::UnorderedElementsAre("user_id->users.id",
                                                   "group_id->groups.id"));
  EXPECT_FALSE(Column(link, "user_id").nullable());
  EXPECT_EQ(link.version_column(), "");
}

TEST_F(SchemaTest, GrouptypesHasNoVersionColumn) {
  const v1::EntityDescription grouptypes = Describe("grouptypes");
  EXPECT_EQ(grouptypes.primary_key(), "id");
  EXPECT_EQ(grouptypes.version_column(), "");
}

TEST_F(SchemaTest, DescribeUnknownEntityIsInvalidArgument) {
  v1::DescribeEntityRequest request;
  request.set_entity("no_such_entity");
  v1::EntityDescription description;
  EXPECT_THAT(client().data()->DescribeEntity(NewContext().get(), request,
                                              &description),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no_such_entity")));
}

// SIGTERM after some traffic stops the server within 10 s, without a crash.
TEST(ProcessTest, StopsPromptlyOnSigterm) {
  auto server = RowgateProcess::Start();
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  EXPECT_EQ(IdOf(client.MustGet("users", 1)), 1);
  const RowgateProcess::ExitInfo exit = server->Stop();
  EXPECT_FALSE(exit.needed_sigkill);
  EXPECT_TRUE(
      WIFEXITED(exit.wait_status) ||
      (WIFSIGNALED(exit.wait_status) && WTERMSIG(exit.wait_status) == SIGTERM))
      << "wait status " << exit.wait_status;
}

// The server logs its settings; a password in the database URL must not
// show up there (the test database trusts local connections, so any
// password connects).
TEST(ProcessTest, OutputNeverShowsDatabasePassword) {
  std::string url = rowgate::testing::TestDatabaseUrl();
  const size_t scheme = url.find("://");
  const size_t at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos ||
      url.substr(scheme + 3, at - scheme - 3).find(':') != std::string::npos) {
    GTEST_SKIP() << "the test database URL has no user@ part to add a "
                    "password to";
  }
  constexpr char kPassword[] = "Pw4RowgateE2e";
  url.insert(at, std::string(":") + kPassword);
  // The last --database_url wins over the one Start() passes.
  auto server = RowgateProcess::Start({"--database_url=" + url});
  ASSERT_NE(server, nullptr);
  {
    // Closed before Stop(): an idle client connection delays shutdown.
    Client client(server->NewChannel());
    v1::BatchGetResponse response;
    EXPECT_THAT(client.BatchGet(BatchGetRequest("no_such_entity", Ints({1})),
                                &response),
                StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  }
  server->Stop();
  const std::string output = server->OutputTail(1 << 20);
  EXPECT_THAT(output, Not(HasSubstr(kPassword)));
}

}  // namespace
}  // namespace rowgate::e2e
