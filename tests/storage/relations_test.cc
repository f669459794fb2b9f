// Relation discovery and naming (storage/relations.h) over entities
// described by hand: the notebook's shape, a name taken by a column, two
// foreign keys to one entity, and columns that cannot relate rows.
#include "storage/relations.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "storage/catalog.h"

namespace rowgate::storage {
namespace {

Entity MakeEntity(const std::string& name,
                  std::vector<std::pair<std::string, ColumnType>> columns,
                  std::vector<ForeignKeyRef> fks = {}) {
  Entity e;
  e.name = name;
  for (auto& [column, type] : columns) {
    Column c;
    c.name = column;
    c.type = type;
    e.columns.push_back(c);
  }
  e.primary_key = 0;
  e.foreign_keys = std::move(fks);
  return e;
}

// "name kind target [link]" per relation of `entity`.
std::vector<std::string> Names(const Entity& entity) {
  std::vector<std::string> out;
  for (const Relation& r : entity.relations) {
    const char* kind = r.kind == Relation::Kind::kManyToOne   ? "m1"
                       : r.kind == Relation::Kind::kOneToMany ? "1m"
                                                              : "mm";
    out.push_back(r.name + " " + kind + " " + r.target +
                  (r.link.empty() ? "" : " " + r.link));
  }
  return out;
}

constexpr ColumnType kInt = ColumnType::kInt64;

TEST(RelationsTest, TheNotebooksModelsGiveItsRelationships) {
  std::vector<Entity> entities = {
      MakeEntity("users", {{"id", kInt}, {"name", ColumnType::kText}}),
      MakeEntity("grouptypes", {{"id", kInt}}),
      MakeEntity("groups", {{"id", kInt}, {"grouptype_id", kInt}},
                 {{"grouptype_id", "grouptypes", "id"}}),
      MakeEntity("users_groups",
                 {{"id", kInt}, {"user_id", kInt}, {"group_id", kInt}},
                 {{"group_id", "groups", "id"}, {"user_id", "users", "id"}}),
  };
  DiscoverRelations(entities);
  EXPECT_EQ(Names(entities[0]),
            (std::vector<std::string>{"users_groups 1m users_groups",
                                      "groups mm groups users_groups"}));
  EXPECT_EQ(Names(entities[1]), (std::vector<std::string>{"groups 1m groups"}));
  EXPECT_EQ(Names(entities[2]),
            (std::vector<std::string>{"grouptype m1 grouptypes",
                                      "users_groups 1m users_groups",
                                      "users mm users users_groups"}));
  EXPECT_EQ(Names(entities[3]),
            (std::vector<std::string>{"group m1 groups", "user m1 users"}));
}

// messages.author_id and messages.editor_id both reference people: the
// reverse relations would both be "messages", so the second is qualified by
// its column; a column named like a relation pushes it aside too; a json
// column relates nothing. With exactly two usable foreign keys, messages
// also links people to people (many-to-many, by the documented rule).
TEST(RelationsTest, TakenNamesAreQualifiedByTheirColumn) {
  std::vector<Entity> entities = {
      MakeEntity("people", {{"id", kInt}}),
      MakeEntity("messages",
                 {{"id", kInt},
                  {"author_id", kInt},
                  {"editor_id", kInt},
                  {"editor", ColumnType::kText},
                  {"doc", ColumnType::kJson}},
                 {{"author_id", "people", "id"},
                  {"editor_id", "people", "id"},
                  {"doc", "people", "id"}}),
  };
  DiscoverRelations(entities);
  EXPECT_EQ(Names(entities[1]),
            (std::vector<std::string>{"author m1 people",
                                      "editor_by_editor_id m1 people"}));
  EXPECT_EQ(Names(entities[0]),
            (std::vector<std::string>{
                "messages 1m messages", "messages_by_editor_id 1m messages",
                "people mm people messages",
                "people_by_editor_id mm people messages"}));
}

}  // namespace
}  // namespace rowgate::storage
