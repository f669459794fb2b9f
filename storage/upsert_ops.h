// Runs an upsert (storage/upsert_statement.h) and reads what it did with
// each row: one statement on the given connection.
//
// A free function: thread-safe as long as each Connection is used by one
// thread at a time. Blocks on the connection.
#ifndef ROWGATE_STORAGE_UPSERT_OPS_H_
#define ROWGATE_STORAGE_UPSERT_OPS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/statements.h"
#include "storage/upsert_statement.h"
#include "storage/value.h"

namespace rowgate::storage {

enum class UpsertOutcome { kInserted, kUpdated, kUnchanged };

struct UpsertedRow {
  // Aligned with Entity::columns; empty for a kUnchanged row whose stored
  // row the statement could not see (committed by a concurrent transaction
  // after it began).
  Row row;
  UpsertOutcome outcome = UpsertOutcome::kInserted;
};

// Inserts `rows`, or on a conflict on `conflict.target` keeps (kDoNothing)
// or updates (kDoUpdate) the stored row; all in one statement, so all rows
// or none. Returns one UpsertedRow per request row, in order. Two rows of
// one request with the same target under kDoUpdate are INVALID_ARGUMENT
// (PostgreSQL cannot update a row twice in one statement).
absl::StatusOr<std::vector<UpsertedRow>> UpsertRows(
    Connection& conn, const Entity& entity,
    const std::vector<ColumnValues>& rows, const ConflictSpec& conflict);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_UPSERT_OPS_H_
