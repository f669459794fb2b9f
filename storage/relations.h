// Relations between entities, discovered from one-column foreign keys, for
// following them in one call (Include in the API):
//   many-to-one   E.c references T.k          E.<name>  -> at most one T
//   one-to-many   the reverse of it            T.<name>  -> every E
//   many-to-many  a link entity L with exactly two foreign keys, to A and B:
//                 A.<name> -> every B linked through L, and B.<name> the
//                 reverse (the notebook's users.groups via users_groups).
// Naming (README "Relations"): many-to-one: the column without a trailing
// "_id" ("grouptype_id" -> "grouptype"), or the target's name when that
// leaves nothing; one-to-many: the referencing entity's name ("groups");
// many-to-many: the far entity's name ("groups", "users"). A name taken by
// a column or an earlier relation of the entity becomes
// "<name>_by_<column>" (the column relating the rows); a name still taken
// is not offered. Only columns that can be lookup keys relate rows.
//
// Pure function over entities being assembled; the result is immutable
// with its catalog.
#ifndef ROWGATE_STORAGE_RELATIONS_H_
#define ROWGATE_STORAGE_RELATIONS_H_

#include <string>
#include <vector>

namespace rowgate::storage {

struct Entity;

struct Relation {
  enum class Kind { kManyToOne, kOneToMany, kManyToMany };
  std::string name;
  Kind kind = Kind::kManyToOne;
  std::string target;         // entity name
  std::string column;         // of this entity: its values relate the rows
  std::string target_column;  // of the target, matched against them
  // kManyToMany: the link entity, its column matching `column` and its
  // column matching `target_column`.
  std::string link;
  std::string link_column;
  std::string link_target_column;
};

// Fills each entity's `relations` from every entity's foreign_keys.
void DiscoverRelations(std::vector<Entity>& entities);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_RELATIONS_H_
