#include "storage/unique_keys.h"

#include <string>

#include "absl/container/flat_hash_map.h"

namespace rowgate::storage {
namespace {

// One row per (index, key column), in key order. The constraint's name where
// the index backs one (UNIQUE in CREATE TABLE), else the index's own.
constexpr char kUniqueKeysSql[] = R"sql(
SELECT c.relname, coalesce(k.conname, ic.relname), a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.contype = 'u'
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum
WHERE n.nspname = $1 AND i.indisunique AND NOT i.indisprimary
  AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND u.ord <= i.indnkeyatts
ORDER BY c.relname, 2, u.ord)sql";

int FindColumnIndex(const Entity& entity, absl::string_view name) {
  for (size_t i = 0; i < entity.columns.size(); ++i) {
    if (entity.columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

absl::Status AddUniqueKeys(Connection& conn, absl::string_view schema,
                           std::vector<Entity>& entities) {
  absl::StatusOr<QueryResult> rows =
      conn.Execute(kUniqueKeysSql, {std::string(schema)});
  if (!rows.ok()) return rows.status();
  absl::flat_hash_map<std::string, Entity*> by_name;
  for (Entity& e : entities) by_name[e.name] = &e;
  for (int r = 0; r < rows->rows(); ++r) {
    auto it = by_name.find(rows->text(r, 0));
    if (it == by_name.end()) continue;  // not an entity
    Entity& entity = *it->second;
    const absl::string_view name = rows->text(r, 1);
    const int column = FindColumnIndex(entity, rows->text(r, 2));
    if (column < 0) continue;  // dropped meanwhile: the next load sees it
    if (entity.unique_keys.empty() || entity.unique_keys.back().name != name) {
      entity.unique_keys.push_back(UniqueKey{std::string(name), {}});
    }
    entity.unique_keys.back().columns.push_back(column);
  }
  return absl::OkStatus();
}

}  // namespace rowgate::storage
