#include "storage/catalog.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/unique_keys.h"

namespace rowgate::storage {
namespace {

// Columns of every ordinary or partitioned table in the schema. Domains are
// resolved to their base type so a domain over text reads as text.
constexpr char kColumnsSql[] = R"sql(
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname), bn.nspname, a.attnotnull,
       a.atthasdef OR a.attidentity <> '', a.attgenerated <> '',
       c.oid, coalesce(co.collisdeterministic, true)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
JOIN pg_namespace bn ON bn.oid = coalesce(bt.typnamespace, t.typnamespace)
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum)sql";

// Primary key columns, in the key's order (several for a composite key).
constexpr char kPrimaryKeysSql[] = R"sql(
SELECT c.relname, k.ord, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = $1 AND k.ord <= i.indnkeyatts
ORDER BY c.relname, k.ord)sql";

// One-column foreign keys.
constexpr char kForeignKeysSql[] = R"sql(
SELECT c.relname, a.attname, rc.relname, ra.attname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = k.confrelid
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1]
WHERE k.contype = 'f' AND array_length(k.conkey, 1) = 1 AND n.nspname = $1
ORDER BY c.relname, a.attname)sql";

}  // namespace

std::string QuoteIdentifier(absl::string_view identifier) {
  std::string out = "\"";
  for (char c : identifier) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

const Relation* Entity::FindRelation(absl::string_view name) const {
  for (const Relation& r : relations) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

bool Entity::IsKeyColumn(int column) const {
  for (int k : key_columns) {
    if (k == column) return true;
  }
  return false;
}

int Entity::ColumnIndex(absl::string_view column) const {
  auto it = index_.find(column);
  return it == index_.end() ? -1 : it->second;
}

std::shared_ptr<const Catalog> Catalog::FromEntities(
    std::vector<Entity> entities) {
  return Assemble(std::move(entities), {});
}

std::shared_ptr<const Catalog> Catalog::Assemble(
    std::vector<Entity> entities, std::vector<std::string> skipped) {
  std::shared_ptr<Catalog> catalog(new Catalog());
  catalog->skipped_ = std::move(skipped);
  for (Entity& e : entities) {
    e.index_.clear();
    std::vector<std::string> quoted;
    for (size_t i = 0; i < e.columns.size(); ++i) {
      e.index_[e.columns[i].name] = static_cast<int>(i);
      quoted.push_back(e.columns[i].quoted_name);
    }
    e.select_list = absl::StrJoin(quoted, ", ");
    // Entities described by hand (tests) may set only primary_key.
    if (e.key_columns.empty() && e.primary_key >= 0) {
      e.key_columns = {e.primary_key};
    }
    e.primary_key = e.key_columns.size() == 1 ? e.key_columns[0] : -1;
    catalog->by_name_[e.name] = static_cast<int>(catalog->entities_.size());
    catalog->entities_.push_back(std::move(e));
  }
  return catalog;
}

absl::StatusOr<std::shared_ptr<const Catalog>> Catalog::Load(
    Connection& conn, absl::string_view schema,
    absl::string_view version_column) {
  const Params params = {std::string(schema)};
  absl::StatusOr<QueryResult> columns = conn.Execute(kColumnsSql, params);
  if (!columns.ok()) return columns.status();
  absl::StatusOr<QueryResult> keys = conn.Execute(kPrimaryKeysSql, params);
  if (!keys.ok()) return keys.status();
  absl::StatusOr<QueryResult> fks = conn.Execute(kForeignKeysSql, params);
  if (!fks.ok()) return fks.status();

  // std::map: entities come out sorted by name.
  std::map<std::string, Entity> tables;
  for (int r = 0; r < columns->rows(); ++r) {
    const std::string table(columns->text(r, 0));
    Entity& e = tables[table];
    e.name = table;
    e.qualified_name =
        absl::StrCat(QuoteIdentifier(schema), ".", QuoteIdentifier(table));
    Column c;
    c.name = std::string(columns->text(r, 1));
    c.quoted_name = QuoteIdentifier(c.name);
    c.type_name = std::string(columns->text(r, 2));
    const std::string typname(columns->text(r, 3));
    c.type = ColumnTypeFromTypname(typname);
    c.sql_type = absl::StrCat(QuoteIdentifier(columns->text(r, 4)), ".",
                              QuoteIdentifier(typname));
    c.nullable = columns->text(r, 5) != "t";
    c.has_default = columns->text(r, 6) == "t";
    c.generated = columns->text(r, 7) == "t";
    if (!absl::SimpleAtoi(columns->text(r, 8), &e.oid)) e.oid = 0;
    c.deterministic_collation = columns->text(r, 9) == "t";
    e.columns.push_back(std::move(c));
  }

  std::vector<std::string> skipped;
  // Table -> its key's column names, in the key's order.
  std::map<std::string, std::vector<std::string>> primary_keys;
  for (int r = 0; r < keys->rows(); ++r) {
    primary_keys[std::string(keys->text(r, 0))].emplace_back(keys->text(r, 2));
  }
  for (auto it = tables.begin(); it != tables.end();) {
    if (!primary_keys.count(it->first)) {
      skipped.push_back(absl::StrCat(it->first, ": it has no primary key"));
      it = tables.erase(it);
    } else {
      ++it;
    }
  }
  for (int r = 0; r < fks->rows(); ++r) {
    auto it = tables.find(std::string(fks->text(r, 0)));
    if (it == tables.end()) continue;
    it->second.foreign_keys.push_back({std::string(fks->text(r, 1)),
                                       std::string(fks->text(r, 2)),
                                       std::string(fks->text(r, 3))});
  }

  std::vector<Entity> entities;
  for (auto& [name, e] : tables) {
    for (const std::string& key : primary_keys[name]) {
      for (size_t i = 0; i < e.columns.size(); ++i) {
        if (e.columns[i].name == key) {
          e.key_columns.push_back(static_cast<int>(i));
        }
      }
    }
    for (size_t i = 0; i < e.columns.size(); ++i) {
      const Column& c = e.columns[i];
      if (c.name == version_column && (c.type == ColumnType::kTimestamp ||
                                       c.type == ColumnType::kTimestampTz)) {
        e.version_column = static_cast<int>(i);
      }
    }
    entities.push_back(std::move(e));
  }
  DiscoverRelations(entities);
  if (absl::Status s = AddUniqueKeys(conn, schema, entities); !s.ok()) {
    return s;
  }
  return Assemble(std::move(entities), std::move(skipped));
}

const Entity* Catalog::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entities_[it->second];
}

}  // namespace rowgate::storage
