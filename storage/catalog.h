// What rowgate serves: the entities (tables) of one schema, read from the
// PostgreSQL catalog at start (database first).
//
// A table is an entity when it has a primary key, of one column or several
// (a composite key, e.g. the notebook's users_groups (id, user_id,
// group_id)). Every column is
// listed; a type rowgate has no special mapping for is read and written as
// its text form (ColumnType::kOther), never a crash. SQL identifiers used
// anywhere in rowgate come from here, already quoted.
//
// Immutable once loaded; share it as std::shared_ptr<const Catalog> across
// threads freely.
#ifndef ROWGATE_STORAGE_CATALOG_H_
#define ROWGATE_STORAGE_CATALOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/connection.h"
#include "storage/relations.h"
#include "storage/value.h"

namespace rowgate::storage {

struct Column {
  std::string name;
  std::string quoted_name;  // "name", safe to splice into SQL
  std::string type_name;    // format_type(), e.g. "character varying"
  std::string sql_type;     // the type to cast parameters to, e.g. "varchar"
  ColumnType type = ColumnType::kOther;
  bool nullable = true;
  bool has_default = false;
  bool generated = false;  // GENERATED ALWAYS: never written
  // false for a nondeterministic collation (e.g. case-insensitive ICU):
  // equal keys may then be spelled differently.
  bool deterministic_collation = true;
};

struct ForeignKeyRef {
  std::string column;
  std::string references_entity;
  std::string references_column;
};

// A unique constraint or unique index (not the primary key): a possible
// conflict target of an upsert. Only plain ones: no predicate, no
// expression columns.
struct UniqueKey {
  std::string name;          // the constraint's (else the index's) name
  std::vector<int> columns;  // indexes into Entity::columns, in key order
};

struct Entity {
  std::string name;
  std::string qualified_name;  // "schema"."table", quoted
  // The table's pg_class OID (0 for entities described by hand): a table
  // dropped and created again under its name has another.
  uint32_t oid = 0;
  std::vector<Column> columns;
  // The one key column; -1 when the key has several columns (then see
  // key_columns). Code that indexes columns[primary_key] checks
  // composite_key() first.
  int primary_key = -1;
  // Every primary key column, in the key's order (one for a simple key).
  std::vector<int> key_columns;
  int version_column = -1;  // -1: no optimistic-concurrency column
  std::vector<ForeignKeyRef> foreign_keys;
  // Discovered from every entity's foreign keys (relations.h).
  std::vector<Relation> relations;
  std::string select_list;  // every column, quoted, comma-separated
  // Unique constraints and indexes besides the primary key, by name.
  std::vector<UniqueKey> unique_keys;

  // The named relation, or nullptr.
  const Relation* FindRelation(absl::string_view name) const;
  // The index of the named column, or -1.
  int ColumnIndex(absl::string_view column) const;
  // The one key column: only for !composite_key().
  const Column& key() const { return columns[primary_key]; }
  bool composite_key() const { return key_columns.size() > 1; }
  bool IsKeyColumn(int column) const;

 private:
  friend class Catalog;
  absl::flat_hash_map<std::string, int> index_;
};

class Catalog {
 public:
  // Reads the tables of `schema`. `version_column` names the optimistic
  // concurrency column (e.g. "lastchange"); it counts only where a table has
  // it with a timestamp type. Blocks on `conn`.
  static absl::StatusOr<std::shared_ptr<const Catalog>> Load(
      Connection& conn, absl::string_view schema,
      absl::string_view version_column);

  // Builds a catalog from entities already described (for tests).
  static std::shared_ptr<const Catalog> FromEntities(
      std::vector<Entity> entities);

  // The entity named `name`, or nullptr.
  const Entity* Find(absl::string_view name) const;
  const std::vector<Entity>& entities() const { return entities_; }
  // Tables of the schema that are not entities, with the reason.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  Catalog() = default;
  static std::shared_ptr<const Catalog> Assemble(
      std::vector<Entity> entities, std::vector<std::string> skipped);
  std::vector<Entity> entities_;
  absl::flat_hash_map<std::string, int> by_name_;
  std::vector<std::string> skipped_;
};

// Quotes an SQL identifier: "a""b".
std::string QuoteIdentifier(absl::string_view identifier);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_CATALOG_H_
