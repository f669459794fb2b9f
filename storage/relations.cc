#include "storage/relations.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/catalog.h"

namespace rowgate::storage {
namespace {

// Whether `entity` has `column` and it can be a lookup key.
bool KeyColumn(const Entity& entity, const std::string& column) {
  for (const Column& c : entity.columns) {
    if (c.name == column) return IsKeyType(c.type);
  }
  return false;
}

void Add(Entity& entity, Relation relation) {
  auto taken = [&](const std::string& name) {
    for (const Column& c : entity.columns) {
      if (c.name == name) return true;
    }
    for (const Relation& r : entity.relations) {
      if (r.name == name) return true;
    }
    return false;
  };
  if (taken(relation.name)) {
    relation.name = absl::StrCat(
        relation.name, "_by_",
        relation.kind == Relation::Kind::kManyToMany  ? relation.link_column
        : relation.kind == Relation::Kind::kOneToMany ? relation.target_column
                                                      : relation.column);
    if (taken(relation.name)) return;
  }
  entity.relations.push_back(std::move(relation));
}

}  // namespace

void DiscoverRelations(std::vector<Entity>& entities) {
  std::map<std::string, Entity*> by_name;
  for (Entity& e : entities) {
    e.relations.clear();
    by_name[e.name] = &e;
  }
  for (Entity& e : entities) {
    for (const ForeignKeyRef& fk : e.foreign_keys) {
      auto target = by_name.find(fk.references_entity);
      if (target == by_name.end() || !KeyColumn(e, fk.column) ||
          !KeyColumn(*target->second, fk.references_column)) {
        continue;
      }
      std::string name = fk.column;
      for (absl::string_view suffix : {"_id", "Id", "_ID"}) {
        if (absl::EndsWith(name, suffix) && name.size() > suffix.size()) {
          name.resize(name.size() - suffix.size());
          break;
        }
      }
      if (name == fk.column) name = target->first;
      Add(e, {name, Relation::Kind::kManyToOne, target->first, fk.column,
              fk.references_column});
      Add(*target->second, {e.name, Relation::Kind::kOneToMany, e.name,
                            fk.references_column, fk.column});
    }
  }
  // Link entities: exactly two (usable) foreign keys.
  for (Entity& link : entities) {
    std::vector<const ForeignKeyRef*> fks;
    for (const ForeignKeyRef& fk : link.foreign_keys) {
      auto target = by_name.find(fk.references_entity);
      if (target != by_name.end() && KeyColumn(link, fk.column) &&
          KeyColumn(*target->second, fk.references_column)) {
        fks.push_back(&fk);
      }
    }
    if (fks.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const ForeignKeyRef& near = *fks[side];
      const ForeignKeyRef& far = *fks[1 - side];
      Entity& from = *by_name[near.references_entity];
      Add(from, {far.references_entity, Relation::Kind::kManyToMany,
                 far.references_entity, near.references_column,
                 far.references_column, link.name, near.column, far.column});
    }
  }
}

}  // namespace rowgate::storage
