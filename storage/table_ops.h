// The statements rowgate runs against an entity: lookup by keys, insert,
// optimistic update, delete and keyset paging.
// Their SQL and parameters are built by statements.h; this runs them and
// reads the answers.
//
// Each function builds its SQL only from the Entity's catalog identifiers
// (quoted) and binds every value as a parameter, runs ONE statement on the
// given connection (Update and Delete may run a second, read-only one to
// explain a refusal), and returns rows aligned with Entity::columns.
// Values of the wrong kind for a column give INVALID_ARGUMENT naming it.
//
// Free functions: thread-safe as long as each Connection is used by one
// thread at a time. All of them block on the connection.
#ifndef ROWGATE_STORAGE_TABLE_OPS_H_
#define ROWGATE_STORAGE_TABLE_OPS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/statements.h"
#include "storage/value.h"

namespace rowgate::storage {

// Rows found by a key lookup, by canonical key text (see CanonicalKey).
struct KeyedRows {
  absl::flat_hash_map<std::string, std::vector<Row>> by_key;
};

// SELECT every column WHERE key_column = ANY($1): one query for all `keys`
// (canonical key texts, distinct). key_column kCompositeKeyColumn
// (composite_key.h): by the entity's whole composite primary key.
absl::StatusOr<KeyedRows> FetchByKeys(Connection& conn, const Entity& entity,
                                      int key_column,
                                      const std::vector<std::string>& keys);

// One INSERT ... VALUES (...), (...) RETURNING: all rows or none. Columns a
// row leaves out take their DEFAULT. Returns the stored rows in order.
absl::StatusOr<std::vector<Row>> InsertRows(
    Connection& conn, const Entity& entity,
    const std::vector<ColumnValues>& rows);

// Updates the columns present in `values`, which must hold the primary key
// and, where the entity has a version column, the version the caller read.
// One atomic UPDATE ... WHERE key = $k AND version = $v, setting the version
// to now. ABORTED (with the stored version) when the version is stale,
// NOT_FOUND when no row has the key.
absl::StatusOr<Row> UpdateRow(Connection& conn, const Entity& entity,
                              const ColumnValues& values);

// Deletes rows by primary key; returns, per requested key, whether it was
// deleted. With `expected_version` (exactly one key): deletes only when the
// version still matches, else ABORTED.
absl::StatusOr<std::vector<bool>> DeleteRows(
    Connection& conn, const Entity& entity, const std::vector<Value>& keys,
    const std::optional<Value>& expected_version);

// DeleteRows by keys already canonical (statements.h DeleteStatementForKeys):
// the form for an entity with a composite primary key.
absl::StatusOr<std::vector<bool>> DeleteRowsForKeys(
    Connection& conn, const Entity& entity,
    std::vector<std::string> canonical_keys,
    const std::optional<Value>& expected_version);

struct PageResult {
  std::vector<Row> rows;
  std::string next_page_token;  // empty: no more rows
};

// One page by keyset: WHERE filters AND (sort key) > (cursor) ORDER BY ...
// LIMIT limit+1. INVALID_ARGUMENT for a malformed token or one issued for a
// different entity, filter or order.
absl::StatusOr<PageResult> FetchPage(Connection& conn, const Entity& entity,
                                     const PageQuery& query);

// RFC 3339 text of a stored version value, for messages.
std::string DescribeValue(const Value& value);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_TABLE_OPS_H_
