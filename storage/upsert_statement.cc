#include "storage/upsert_statement.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/value.h"

namespace rowgate::storage {
namespace {

// Bound parameters and their placeholders (as statements.cc's).
class UpsertParams {
 public:
  absl::StatusOr<std::string> Add(const Column& column, const Value& value,
                                  std::optional<std::string>* text_out) {
    absl::StatusOr<std::optional<std::string>> text =
        ToParameter(column.name, column.type, value);
    if (!text.ok()) return text.status();
    *text_out = *text;
    params_.push_back(std::move(*text));
    return absl::StrCat("$", params_.size(), "::", column.sql_type);
  }
  const Params& params() const { return params_; }

 private:
  Params params_;
};

// "now" for a version column, in its own type.
std::string NowFor(const Column& column) {
  return column.type == ColumnType::kTimestampTz
             ? "clock_timestamp()"
             : "timezone('UTC', clock_timestamp())";
}

bool Contains(const std::vector<int>& columns, int column) {
  return std::find(columns.begin(), columns.end(), column) != columns.end();
}

// The checks Insert makes of every cell (statements.cc InsertStatement).
absl::Status CheckCell(const Entity& entity, int column, const Value& value) {
  const Column& c = entity.columns[column];
  if (c.generated) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", c.name, "\" of ", entity.name,
                     " is generated and cannot be written"));
  }
  const std::string* text = std::get_if<std::string>(&value);
  if (column == entity.version_column && text != nullptr &&
      absl::StrContains(absl::AsciiStrToLower(*text), "infinity")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column \"", c.name, "\" of ", entity.name,
        " is the version column and cannot be infinite: an infinite "
        "version never changes, so concurrent updates would both succeed"));
  }
  return absl::OkStatus();
}

std::string QuotedColumns(const Entity& entity,
                          const std::vector<int>& columns) {
  std::vector<std::string> names;
  names.reserve(columns.size());
  for (int c : columns) names.push_back(entity.columns[c].quoted_name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

std::vector<int> PrimaryKeyColumns(const Entity& entity) {
  if (!entity.key_columns.empty()) return entity.key_columns;
  return {entity.primary_key};
}

absl::StatusOr<ConflictSpec> ResolveConflict(
    const Entity& entity, ConflictAction action, absl::string_view constraint,
    const std::vector<int>& update_columns) {
  ConflictSpec spec;
  spec.action = action;
  if (constraint.empty()) {
    spec.target = PrimaryKeyColumns(entity);
  } else {
    for (const UniqueKey& key : entity.unique_keys) {
      if (key.name == constraint) spec.target = key.columns;
    }
    if (spec.target.empty()) {
      std::vector<std::string> names;
      for (const UniqueKey& key : entity.unique_keys) {
        names.push_back(Abbreviate(key.name));
        if (names.size() == 8) break;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "entity ", entity.name, " has no unique constraint \"",
          Abbreviate(constraint), "\" (",
          names.empty() ? "it has none besides the primary key"
                        : absl::StrCat("it has: ", absl::StrJoin(names, ", ")),
          "; empty means the primary key)"));
    }
  }
  if (action == ConflictAction::kDoNothing && !update_columns.empty()) {
    return absl::InvalidArgumentError(
        "on_conflict.update_columns needs action DO_UPDATE");
  }
  for (int c : update_columns) {
    const Column& column = entity.columns[c];
    if (c == entity.version_column) {
      return absl::InvalidArgumentError(
          absl::StrCat("on_conflict.update_columns names \"", column.name,
                       "\", the version column of ", entity.name,
                       ": it moves to now by itself on every update"));
    }
    if (column.generated) {
      return absl::InvalidArgumentError(
          absl::StrCat("column \"", column.name, "\" of ", entity.name,
                       " is generated and cannot be written"));
    }
    if (Contains(spec.target, c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "on_conflict.update_columns names \"", column.name,
          "\", a column of the conflict target: it already holds the value"));
    }
    if (!Contains(spec.update_columns, c)) spec.update_columns.push_back(c);
  }
  return spec;
}

absl::StatusOr<UpsertPlan> UpsertStatement(
    const Entity& entity, const std::vector<ColumnValues>& rows,
    const ConflictSpec& conflict) {
  if (rows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Insert into ", entity.name, " has no rows"));
  }
  if (conflict.target.empty()) {
    return absl::InvalidArgumentError("upsert needs a conflict target");
  }
  std::vector<bool> used(entity.columns.size(), false);
  for (const ColumnValues& row : rows) {
    for (const auto& [column, value] : row) {
      if (absl::Status s = CheckCell(entity, column, value); !s.ok()) return s;
      used[column] = true;
    }
  }
  const std::string target =
      absl::StrCat("(", QuotedColumns(entity, conflict.target), ")");

  UpsertParams params;
  UpsertPlan plan;
  plan.action = conflict.action;
  plan.target_texts.reserve(rows.size());
  // One row's VALUES tuple over `columns`; fills the row's target texts.
  // Placeholders per column are kept so the stored-row lookup of DO
  // NOTHING reuses the same parameters.
  auto tuple = [&](const ColumnValues& row, const std::vector<int>& columns,
                   std::vector<std::string>* placeholders)
      -> absl::StatusOr<std::string> {
    std::vector<const Value*> by_column(entity.columns.size(), nullptr);
    for (const auto& [column, value] : row) by_column[column] = &value;
    placeholders->assign(entity.columns.size(), "");
    std::vector<std::optional<std::string>> texts(entity.columns.size());
    std::vector<std::string> cells;
    for (int c : columns) {
      if (by_column[c] == nullptr) {
        cells.push_back("DEFAULT");
        continue;
      }
      absl::StatusOr<std::string> p =
          params.Add(entity.columns[c], *by_column[c], &texts[c]);
      if (!p.ok()) return p.status();
      (*placeholders)[c] = *p;
      cells.push_back(std::move(*p));
    }
    std::vector<std::string> target_texts;
    bool complete = true;
    for (int c : conflict.target) {
      if (!texts[c].has_value()) {
        complete = false;
        break;
      }
      target_texts.push_back(*texts[c]);
    }
    plan.target_texts.push_back(
        complete ? std::optional<std::vector<std::string>>(target_texts)
                 : std::nullopt);
    return absl::StrCat("(", absl::StrJoin(cells, ", "), ")");
  };

  std::string sql;
  if (conflict.action == ConflictAction::kDoUpdate) {
    std::vector<int> columns;
    for (size_t c = 0; c < used.size(); ++c) {
      if (used[c]) columns.push_back(static_cast<int>(c));
    }
    if (columns.empty()) columns.push_back(PrimaryKeyColumns(entity)[0]);
    std::vector<std::string> tuples;
    for (const ColumnValues& row : rows) {
      std::vector<std::string> unused;
      absl::StatusOr<std::string> t = tuple(row, columns, &unused);
      if (!t.ok()) return t.status();
      tuples.push_back(std::move(*t));
    }
    std::vector<int> set = conflict.update_columns;
    if (set.empty()) {
      for (int c : columns) {
        if (used[c] && c != entity.version_column &&
            !Contains(conflict.target, c)) {
          set.push_back(c);
        }
      }
    }
    std::vector<std::string> assignments;
    for (int c : set) {
      const std::string& name = entity.columns[c].quoted_name;
      assignments.push_back(absl::StrCat(name, " = EXCLUDED.", name));
    }
    if (entity.version_column >= 0) {
      // As Update: strictly later than the stored version even if the
      // clock stands still or steps back; an infinite one becomes now.
      const Column& v = entity.columns[entity.version_column];
      const std::string stored = absl::StrCat("rowgate_t.", v.quoted_name);
      assignments.push_back(absl::StrCat(
          v.quoted_name, " = CASE WHEN isfinite(", stored, ") THEN GREATEST(",
          NowFor(v), ", ", stored, " + interval '1 microsecond') ELSE ",
          NowFor(v), " END"));
    }
    if (assignments.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upsert into ", entity.name,
          " has nothing to update on a conflict (the rows name only the "
          "conflict target and ",
          entity.name, " has no version column); use DO_NOTHING"));
    }
    sql = absl::StrCat("INSERT INTO ", entity.qualified_name, " AS rowgate_t (",
                       QuotedColumns(entity, columns), ") VALUES ",
                       absl::StrJoin(tuples, ", "), " ON CONFLICT ", target,
                       " DO UPDATE SET ", absl::StrJoin(assignments, ", "),
                       " RETURNING ", entity.select_list,
                       ", (rowgate_t.xmax = 0)");
  } else {
    std::vector<std::string> ctes;
    std::vector<std::string> branches;
    for (size_t i = 0; i < rows.size(); ++i) {
      std::vector<int> columns;
      for (const auto& [column, value] : rows[i]) columns.push_back(column);
      std::sort(columns.begin(), columns.end());
      columns.erase(std::unique(columns.begin(), columns.end()), columns.end());
      if (columns.empty()) columns.push_back(PrimaryKeyColumns(entity)[0]);
      std::vector<std::string> placeholders;
      absl::StatusOr<std::string> t = tuple(rows[i], columns, &placeholders);
      if (!t.ok()) return t.status();
      const std::string name = absl::StrCat("rowgate_i", i);
      ctes.push_back(absl::StrCat(
          name, " AS (INSERT INTO ", entity.qualified_name, " (",
          QuotedColumns(entity, columns), ") VALUES ", *t, " ON CONFLICT ",
          target, " DO NOTHING RETURNING ", entity.select_list, ")"));
      branches.push_back(absl::StrCat("SELECT ", entity.select_list, ", ", i,
                                      ", true FROM ", name));
      if (plan.target_texts.back().has_value()) {
        std::vector<std::string> match;
        for (int c : conflict.target) {
          match.push_back(absl::StrCat(entity.columns[c].quoted_name, " = ",
                                       placeholders[c]));
        }
        branches.push_back(absl::StrCat(
            "SELECT ", entity.select_list, ", ", i, ", false FROM ",
            entity.qualified_name, " WHERE ", absl::StrJoin(match, " AND ")));
      }
    }
    sql = absl::StrCat("WITH ", absl::StrJoin(ctes, ", "), " ",
                       absl::StrJoin(branches, " UNION ALL "));
  }
  if (params.params().size() > kMaxBoundParameters) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upsert into ", entity.name, " needs ", params.params().size(),
        " bound parameters; PostgreSQL takes at most ", kMaxBoundParameters,
        " per statement (send fewer rows or values per request)"));
  }
  plan.statement = Statement{std::move(sql), params.params()};
  return plan;
}

}  // namespace rowgate::storage
