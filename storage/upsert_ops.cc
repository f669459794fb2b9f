#include "storage/upsert_ops.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rowgate::storage {
namespace {

// The entity's columns of result row `r`.
Row ReadEntityRow(const QueryResult& result, int r, const Entity& entity) {
  Row row;
  row.reserve(entity.columns.size());
  const int columns = static_cast<int>(entity.columns.size());
  result.VisitRow(r, [&](int c, absl::string_view text, bool is_null) {
    if (c >= columns) return;
    row.push_back(is_null ? Value(std::monostate())
                          : ParseText(entity.columns[c].type, text));
  });
  return row;
}

}  // namespace

absl::StatusOr<std::vector<UpsertedRow>> UpsertRows(
    Connection& conn, const Entity& entity,
    const std::vector<ColumnValues>& rows, const ConflictSpec& conflict) {
  absl::StatusOr<UpsertPlan> plan = UpsertStatement(entity, rows, conflict);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<QueryResult> result =
      conn.Execute(plan->statement.sql, plan->statement.params);
  if (!result.ok()) {
    // 21000: ON CONFLICT DO UPDATE met one stored row twice.
    if (absl::StrContains(result.status().message(), "(SQLSTATE 21000)")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upsert into ", entity.name,
          ": two rows of the request have the same conflict target, and one "
          "statement cannot update a row twice (",
          result.status().message(), ")"));
    }
    return result.status();
  }
  const int n = static_cast<int>(entity.columns.size());
  std::vector<UpsertedRow> out(rows.size());
  if (plan->action == ConflictAction::kDoUpdate) {
    if (result->rows() != static_cast<int>(rows.size())) {
      return absl::InternalError(absl::StrCat("upsert into ", entity.name,
                                              " returned ", result->rows(),
                                              " rows for ", rows.size()));
    }
    for (int r = 0; r < result->rows(); ++r) {
      out[r].row = ReadEntityRow(*result, r, entity);
      out[r].outcome = result->text(r, n) == "t" ? UpsertOutcome::kInserted
                                                 : UpsertOutcome::kUpdated;
    }
    return out;
  }
  // DO NOTHING: rows tagged with their ordinal; an inserted one wins over
  // the stored lookup (which cannot see it anyway).
  std::vector<bool> seen(rows.size(), false);
  for (int r = 0; r < result->rows(); ++r) {
    size_t i = 0;
    if (!absl::SimpleAtoi(result->text(r, n), &i) || i >= rows.size()) {
      return absl::InternalError("upsert returned a row of no request row");
    }
    const bool inserted = result->text(r, n + 1) == "t";
    if (seen[i] && !inserted) continue;
    seen[i] = true;
    out[i].row = ReadEntityRow(*result, r, entity);
    out[i].outcome =
        inserted ? UpsertOutcome::kInserted : UpsertOutcome::kUnchanged;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    if (seen[i]) continue;
    out[i].outcome = UpsertOutcome::kUnchanged;
    // Skipped for a row an earlier row of this statement inserted (which
    // the statement's snapshot cannot show): that row is the stored one.
    if (!plan->target_texts[i].has_value()) continue;
    for (size_t j = 0; j < i; ++j) {
      if (out[j].outcome == UpsertOutcome::kInserted &&
          plan->target_texts[j] == plan->target_texts[i]) {
        out[i].row = out[j].row;
        break;
      }
    }
  }
  return out;
}

}  // namespace rowgate::storage
