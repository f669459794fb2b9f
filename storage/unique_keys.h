// Reads the unique constraints and unique indexes (besides primary keys) of
// a schema's tables into their entities: the conflict targets an upsert may
// name (storage/upsert_statement.h). Part of Catalog::Load.
//
// A free function; blocks on the connection it is given.
#ifndef ROWGATE_STORAGE_UNIQUE_KEYS_H_
#define ROWGATE_STORAGE_UNIQUE_KEYS_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/catalog.h"
#include "storage/connection.h"

namespace rowgate::storage {

// Fills Entity::unique_keys of every entity of `schema` in `entities` (whose
// columns are already read), sorted by name. Only plain unique indexes
// count: valid, with no predicate and no expression column, since ON
// CONFLICT (columns) can infer only those.
absl::Status AddUniqueKeys(Connection& conn, absl::string_view schema,
                           std::vector<Entity>& entities);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_UNIQUE_KEYS_H_
