// The SQL of an upsert (INSERT ... ON CONFLICT), built without a connection
// like statements.h: identifiers only from the catalog, every value a bound
// "$n::type" parameter, the conflict target only from the entity's primary
// key or one of its catalogued unique keys (never a client's string).
//
//   DO UPDATE: one INSERT ... VALUES (...), (...) ON CONFLICT (target) DO
//     UPDATE SET c = EXCLUDED.c, ..., version = <later than before>
//     RETURNING every column, (xmax = 0): a row per request row, in request
//     order, saying whether it was inserted (xmax is 0 only for a tuple this
//     statement created, not for one it updated).
//   DO NOTHING: RETURNING cannot say which request rows were skipped, so
//     each row gets an INSERT of its own in a CTE of one statement, tagged
//     with its ordinal; the stored row a skipped one met is read by the same
//     statement (from its snapshot, which predates the inserts).
//
// Pure functions; thread-safe. A plan holds no pointers into its inputs.
//
// Example:
//   absl::StatusOr<ConflictSpec> spec =
//       ResolveConflict(entity, ConflictAction::kDoUpdate, "", {});
//   absl::StatusOr<UpsertPlan> plan = UpsertStatement(entity, rows, *spec);
#ifndef ROWGATE_STORAGE_UPSERT_STATEMENT_H_
#define ROWGATE_STORAGE_UPSERT_STATEMENT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/catalog.h"
#include "storage/statements.h"

namespace rowgate::storage {

enum class ConflictAction { kDoNothing, kDoUpdate };

struct ConflictSpec {
  ConflictAction action = ConflictAction::kDoNothing;
  std::vector<int> target;  // the conflict target's columns, in key order
  // kDoUpdate: the columns to set from the proposed row. Empty: every
  // column the rows name, but the target's and the version column.
  std::vector<int> update_columns;
};

// The columns of the entity's primary key, in key order.
std::vector<int> PrimaryKeyColumns(const Entity& entity);

// Checks and resolves an upsert's choice: `constraint` empty means the
// primary key, else a name from Entity::unique_keys. INVALID_ARGUMENT naming
// the constraint, or the column, when unknown, or when an update column is
// the version column (it moves by itself), a target column or generated.
absl::StatusOr<ConflictSpec> ResolveConflict(
    const Entity& entity, ConflictAction action, absl::string_view constraint,
    const std::vector<int>& update_columns);

// The result's layout: the entity's columns, then (for kDoNothing only) the
// request row's ordinal, then whether the row was inserted.
struct UpsertPlan {
  Statement statement;
  ConflictAction action = ConflictAction::kDoNothing;
  // Per request row: the target's parameter texts, or nullopt when a target
  // column is absent or null (such a row cannot meet a stored one on it).
  std::vector<std::optional<std::vector<std::string>>> target_texts;
};
absl::StatusOr<UpsertPlan> UpsertStatement(
    const Entity& entity, const std::vector<ColumnValues>& rows,
    const ConflictSpec& conflict);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_UPSERT_STATEMENT_H_
