#include "storage/statements.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/composite_key.h"
#include "storage/page_token.h"

namespace rowgate::storage {
namespace {

// Accumulates bound parameters and hands out their placeholders.
class ParamList {
 public:
  // "$n::type" for a new parameter holding `value` for `column`.
  absl::StatusOr<std::string> Add(const Column& column, const Value& value) {
    absl::StatusOr<std::optional<std::string>> text =
        ToParameter(column.name, column.type, value);
    if (!text.ok()) return text.status();
    return AddText(std::move(*text), column.sql_type);
  }
  std::string AddText(std::optional<std::string> text,
                      absl::string_view sql_type) {
    params_.push_back(std::move(text));
    return absl::StrCat("$", params_.size(), "::", sql_type);
  }
  const Params& params() const { return params_; }
  Params& mutable_params() { return params_; }

  // INVALID_ARGUMENT when the statement needs more parameters than
  // PostgreSQL's protocol can bind (libpq would refuse it with an error
  // that carries no SQLSTATE).
  absl::Status CheckCount(absl::string_view statement) const {
    if (params_.size() <= kMaxBoundParameters) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        statement, " needs ", params_.size(),
        " bound parameters; PostgreSQL takes at most ", kMaxBoundParameters,
        " per statement (send fewer rows or values per request)"));
  }

 private:
  Params params_;
};

// "now" for a version column, in its own type.
std::string NowFor(const Column& column) {
  return column.type == ColumnType::kTimestampTz
             ? "clock_timestamp()"
             : "timezone('UTC', clock_timestamp())";
}

// Whether `value` is text PostgreSQL reads as an infinite timestamp
// ("infinity", "-Infinity", " +infinity ", ...).
bool IsInfiniteTimestampText(const Value& value) {
  const std::string* text = std::get_if<std::string>(&value);
  return text != nullptr &&
         absl::StrContains(absl::AsciiStrToLower(*text), "infinity");
}

absl::string_view OpSql(FilterOp op) {
  switch (op) {
    case FilterOp::kEqual:
      return " = ";
    case FilterOp::kNotEqual:
      return " <> ";
    case FilterOp::kLess:
      return " < ";
    case FilterOp::kLessOrEqual:
      return " <= ";
    case FilterOp::kGreater:
      return " > ";
    case FilterOp::kGreaterOrEqual:
      return " >= ";
    default:
      return "";
  }
}

// Whether a key of `type` may match stored text that differs from it: a
// char(n) pads, citext and nondeterministic collations ignore case or
// accents. Lookups of such keys return the requested key beside each row.
bool MatchesOtherText(ColumnType type) { return type == ColumnType::kText; }

}  // namespace

bool LookupLabelsRows(const Entity& entity, int key_column) {
  if (key_column == kCompositeKeyColumn) {
    return CompositeLookupLabelsRows(entity);
  }
  return MatchesOtherText(entity.columns[key_column].type);
}

std::string LookupSql(const Entity& entity, int key_column) {
  if (key_column == kCompositeKeyColumn) return CompositeLookupSql(entity);
  const Column& key = entity.columns[key_column];
  if (!MatchesOtherText(key.type)) {
    return absl::StrCat("SELECT ", entity.select_list, " FROM ",
                        entity.qualified_name, " WHERE ", key.quoted_name,
                        " = ANY($1::", key.sql_type, "[])");
  }
  // The stored key may be "abc  " or "ABC" for the requested "abc": each
  // row comes with the requested key it matched (by the column's own
  // equality), which is what the keyed map is indexed by. The = ANY keeps
  // one index scan for the whole batch; the join only labels its rows.
  // Every column is qualified, so no table column can clash with the alias.
  std::vector<std::string> columns;
  columns.reserve(entity.columns.size());
  for (const Column& c : entity.columns) {
    columns.push_back(absl::StrCat("rowgate_t.", c.quoted_name));
  }
  return absl::StrCat("SELECT ", absl::StrJoin(columns, ", "),
                      ", rowgate_k.req FROM ", entity.qualified_name,
                      " AS rowgate_t JOIN unnest($1::text[]) AS ",
                      "rowgate_k(req) ON rowgate_t.", key.quoted_name,
                      " = rowgate_k.req::", key.sql_type, " WHERE rowgate_t.",
                      key.quoted_name, " = ANY($1::", key.sql_type, "[])");
}

Statement LookupStatement(const Entity& entity, int key_column,
                          const std::vector<std::string>& keys) {
  if (key_column == kCompositeKeyColumn) {
    return CompositeLookupStatement(entity, keys);
  }
  return Statement{LookupSql(entity, key_column), {ArrayLiteral(keys)}};
}

absl::StatusOr<Statement> InsertStatement(
    const Entity& entity, const std::vector<ColumnValues>& rows) {
  if (rows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Insert into ", entity.name, " has no rows"));
  }
  // The union of the columns any row names, in table order, so equal shapes
  // give equal statement text (and reuse one prepared statement).
  std::vector<bool> used(entity.columns.size(), false);
  for (const ColumnValues& row : rows) {
    for (const auto& [column, value] : row) {
      if (entity.columns[column].generated) {
        return absl::InvalidArgumentError(
            absl::StrCat("column \"", entity.columns[column].name, "\" of ",
                         entity.name, " is generated and cannot be written"));
      }
      if (column == entity.version_column && IsInfiniteTimestampText(value)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "column \"", entity.columns[column].name, "\" of ", entity.name,
            " is the version column and cannot be infinite: an infinite "
            "version never changes, so concurrent updates would both "
            "succeed"));
      }
      used[column] = true;
    }
  }
  std::vector<int> columns;
  for (size_t c = 0; c < used.size(); ++c) {
    if (used[c]) columns.push_back(static_cast<int>(c));
  }
  if (columns.empty()) columns.push_back(entity.key_columns[0]);  // DEFAULT

  ParamList params;
  std::vector<std::string> tuples;
  tuples.reserve(rows.size());
  for (const ColumnValues& row : rows) {
    std::vector<const Value*> by_column(entity.columns.size(), nullptr);
    for (const auto& [column, value] : row) by_column[column] = &value;
    std::vector<std::string> cells;
    for (int c : columns) {
      if (by_column[c] == nullptr) {
        cells.push_back("DEFAULT");
        continue;
      }
      absl::StatusOr<std::string> p =
          params.Add(entity.columns[c], *by_column[c]);
      if (!p.ok()) return p.status();
      cells.push_back(std::move(*p));
    }
    tuples.push_back(absl::StrCat("(", absl::StrJoin(cells, ", "), ")"));
  }
  std::vector<std::string> names;
  for (int c : columns) names.push_back(entity.columns[c].quoted_name);
  std::string sql = absl::StrCat("INSERT INTO ", entity.qualified_name, " (",
                                 absl::StrJoin(names, ", "), ") VALUES ",
                                 absl::StrJoin(tuples, ", "), " RETURNING ",
                                 entity.select_list);
  if (absl::Status s =
          params.CheckCount(absl::StrCat("Insert into ", entity.name));
      !s.ok()) {
    return s;
  }
  return Statement{std::move(sql), params.params()};
}

absl::StatusOr<UpdatePlan> UpdateStatement(const Entity& entity,
                                           const ColumnValues& values) {
  if (entity.composite_key()) return CompositeUpdateStatement(entity, values);
  const Value* key = nullptr;
  const Value* version = nullptr;
  for (const auto& [column, value] : values) {
    if (column == entity.primary_key) key = &value;
    if (column == entity.version_column) version = &value;
  }
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Update of ", entity.name, " needs the primary key \"",
                     entity.key().name, "\" in the row"));
  }
  // A null key matches no row; refuse it rather than explain a no-match.
  absl::StatusOr<std::optional<std::string>> key_text =
      ToParameter(entity.key().name, entity.key().type, *key);
  if (!key_text.ok()) return key_text.status();
  if (!key_text->has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Update of ", entity.name, ": the primary key \"",
                     entity.key().name, "\" is null or unset"));
  }
  return UpdateStatementWhere(entity, values, key, std::move(**key_text),
                              version);
}

absl::StatusOr<UpdatePlan> CompositeUpdateStatement(
    const Entity& entity, const ColumnValues& values) {
  // Every key column, in the key's order: a partial key names what is
  // missing (it could match several rows).
  std::vector<const Value*> parts(entity.key_columns.size(), nullptr);
  const Value* version = nullptr;
  for (const auto& [column, value] : values) {
    for (size_t i = 0; i < parts.size(); ++i) {
      if (entity.key_columns[i] == column) parts[i] = &value;
    }
    if (column == entity.version_column) version = &value;
  }
  std::vector<std::string> missing;
  std::vector<Value> key;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == nullptr) {
      missing.push_back(entity.columns[entity.key_columns[i]].name);
    } else {
      key.push_back(*parts[i]);
    }
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Update of ", entity.name,
                     " needs every primary key column ", KeyColumnsText(entity),
                     " in the row; missing: ", absl::StrJoin(missing, ", ")));
  }
  absl::StatusOr<std::string> key_text = CanonicalCompositeKey(entity, key);
  if (!key_text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Update of ", entity.name, ": ", key_text.status().message()));
  }
  absl::StatusOr<UpdatePlan> where = UpdateStatementWhere(
      entity, values, nullptr, std::move(*key_text), version);
  if (!where.ok()) return where.status();
  where->key_parts = std::move(parts);
  return where;
}

absl::StatusOr<UpdatePlan> UpdateStatementWhere(const Entity& entity,
                                                const ColumnValues& values,
                                                const Value* key,
                                                std::string key_text,
                                                const Value* version) {
  if (entity.version_column >= 0 && version == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Update of ", entity.name, " needs the row's \"",
                     entity.columns[entity.version_column].name,
                     "\" as it was read (optimistic concurrency)"));
  }
  ParamList params;
  std::vector<std::string> assignments;
  for (const auto& [column, value] : values) {
    if (entity.IsKeyColumn(column) || column == entity.version_column) {
      continue;
    }
    const Column& c = entity.columns[column];
    if (c.generated) {
      return absl::InvalidArgumentError(
          absl::StrCat("column \"", c.name, "\" of ", entity.name,
                       " is generated and cannot be written"));
    }
    absl::StatusOr<std::string> p = params.Add(c, value);
    if (!p.ok()) return p.status();
    assignments.push_back(absl::StrCat(c.quoted_name, " = ", *p));
  }
  if (entity.version_column >= 0) {
    // Strictly increasing even if the clock stands still or steps back. An
    // infinite stored version (written by SQL; Insert refuses one) plus 1us
    // stays infinite, so the update could never be told apart from the next:
    // it is replaced by now.
    const Column& v = entity.columns[entity.version_column];
    assignments.push_back(
        absl::StrCat(v.quoted_name, " = CASE WHEN isfinite(", v.quoted_name,
                     ") THEN GREATEST(", NowFor(v), ", ", v.quoted_name,
                     " + interval '1 microsecond') ELSE ", NowFor(v), " END"));
  }
  if (assignments.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Update of ", entity.name, " names no column to change"));
  }
  absl::StatusOr<std::string> key_where =
      KeyEqualsSql(entity, key_text, params.mutable_params());
  if (!key_where.ok()) return key_where.status();
  std::string where = std::move(*key_where);
  if (version != nullptr) {
    absl::StatusOr<std::string> p =
        params.Add(entity.columns[entity.version_column], *version);
    if (!p.ok()) return p.status();
    absl::StrAppend(&where, " AND ",
                    entity.columns[entity.version_column].quoted_name,
                    " IS NOT DISTINCT FROM ", *p);
  }
  std::string sql = absl::StrCat("UPDATE ", entity.qualified_name, " SET ",
                                 absl::StrJoin(assignments, ", "), " WHERE ",
                                 where, " RETURNING ", entity.select_list);
  UpdatePlan plan;
  plan.statement = Statement{std::move(sql), params.params()};
  plan.key = key;
  plan.key_text = std::move(key_text);
  plan.version = version;
  return plan;
}

absl::StatusOr<DeletePlan> DeleteStatement(
    const Entity& entity, const std::vector<Value>& keys,
    const std::optional<Value>& expected_version) {
  if (entity.composite_key()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the primary key of ", entity.name, " is ", KeyColumnsText(entity),
        ": delete by composite keys (DeleteStatementForKeys)"));
  }
  std::vector<std::string> canonical_keys;
  canonical_keys.reserve(keys.size());
  for (const Value& key : keys) {
    absl::StatusOr<std::string> k =
        CanonicalKey(entity.key().name, entity.key().type, key);
    if (!k.ok()) return k.status();
    canonical_keys.push_back(std::move(*k));
  }
  return DeleteStatementForKeys(entity, std::move(canonical_keys),
                                expected_version);
}

absl::StatusOr<DeletePlan> DeleteStatementForKeys(
    const Entity& entity, std::vector<std::string> canonical_keys,
    const std::optional<Value>& expected_version) {
  DeletePlan plan;
  plan.canonical_keys = std::move(canonical_keys);
  if (plan.canonical_keys.empty()) return plan;
  const size_t key_count = plan.canonical_keys.size();

  if (expected_version.has_value()) {
    if (entity.version_column < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("entity ", entity.name,
                       " has no version column; omit "
                       "expected_version"));
    }
    if (key_count != 1) {
      return absl::InvalidArgumentError(
          "expected_version needs exactly one key");
    }
    ParamList params;
    absl::StatusOr<std::string> key_where =
        KeyEqualsSql(entity, plan.canonical_keys[0], params.mutable_params());
    if (!key_where.ok()) return key_where.status();
    const Column& v = entity.columns[entity.version_column];
    absl::StatusOr<std::string> version_param =
        params.Add(v, *expected_version);
    if (!version_param.ok()) return version_param.status();
    plan.guarded = true;
    plan.statement = Statement{
        absl::StrCat("DELETE FROM ", entity.qualified_name, " WHERE ",
                     *key_where, " AND ", v.quoted_name,
                     " IS NOT DISTINCT FROM ", *version_param, " RETURNING ",
                     entity.columns[entity.key_columns[0]].quoted_name),
        params.params()};
    return plan;
  }

  // Which requested keys had their row deleted, compared by the column's
  // own equality (a char(n) or citext key is stored as other text than
  // asked for): one statement.
  if (entity.composite_key()) {
    plan.statement = CompositeDeleteStatement(entity, plan.canonical_keys);
    return plan;
  }
  const Column& key = entity.key();
  plan.statement = Statement{
      absl::StrCat("WITH rowgate_d AS (DELETE FROM ", entity.qualified_name,
                   " WHERE ", key.quoted_name, " = ANY($1::", key.sql_type,
                   "[]) RETURNING ", key.quoted_name,
                   " AS rowgate_key) SELECT DISTINCT rowgate_k.req FROM "
                   "rowgate_d JOIN unnest($1::text[]) AS rowgate_k(req) ON "
                   "rowgate_d.rowgate_key = rowgate_k.req::",
                   key.sql_type),
      {ArrayLiteral(plan.canonical_keys)}};
  return plan;
}

absl::StatusOr<PagePlan> PageStatement(const Entity& entity,
                                       const PageQuery& query) {
  ParamList params;
  std::vector<std::string> conditions;
  // What the token's fingerprint covers: the entity, filters and order.
  std::string description = absl::StrCat(entity.name, "|");

  for (const FilterSpec& f : query.filters) {
    const Column& c = entity.columns[f.column];
    absl::StrAppend(&description, c.name, ":", static_cast<int>(f.op), "(");
    switch (f.op) {
      case FilterOp::kIsNull:
      case FilterOp::kIsNotNull:
        conditions.push_back(absl::StrCat(
            c.quoted_name,
            f.op == FilterOp::kIsNull ? " IS NULL" : " IS NOT NULL"));
        break;
      case FilterOp::kIn: {
        std::vector<std::string> elements;
        for (const Value& v : f.values) {
          absl::StatusOr<std::optional<std::string>> text =
              ToParameter(c.name, c.type, v);
          if (!text.ok()) return text.status();
          if (!text->has_value()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "IN filter on \"", c.name, "\" holds a null; use IS_NULL"));
          }
          absl::StrAppend(&description, text->value().size(), ":",
                          text->value());
          elements.push_back(std::move(text->value()));
        }
        conditions.push_back(
            absl::StrCat(c.quoted_name, " = ANY(",
                         params.AddText(ArrayLiteral(elements),
                                        absl::StrCat(c.sql_type, "[]")),
                         ")"));
        break;
      }
      default: {
        if (f.values.size() != 1 ||
            std::holds_alternative<std::monostate>(f.values[0])) {
          return absl::InvalidArgumentError(absl::StrCat(
              "filter on \"", c.name,
              "\" needs one non-null value (use IS_NULL for nulls)"));
        }
        absl::StatusOr<std::optional<std::string>> text =
            ToParameter(c.name, c.type, f.values[0]);
        if (!text.ok()) return text.status();
        if (!text->has_value()) {  // unreachable: nulls were refused above
          return absl::InvalidArgumentError(
              absl::StrCat("filter on \"", c.name, "\" has a null value"));
        }
        absl::StrAppend(&description, (*text)->size(), ":", **text);
        conditions.push_back(
            absl::StrCat(c.quoted_name, OpSql(f.op),
                         params.AddText(std::move(*text), c.sql_type)));
      }
    }
    absl::StrAppend(&description, ")");
  }

  // The sort key: the requested order, then the primary key's columns not
  // in it yet, which make the order total (nothing after them matters).
  std::vector<OrderSpec> order;
  std::vector<bool> key_seen(entity.key_columns.size(), false);
  size_t keys_seen = 0;
  for (const OrderSpec& o : query.order) {
    if (keys_seen == key_seen.size()) break;
    order.push_back(o);
    for (size_t k = 0; k < key_seen.size(); ++k) {
      if (entity.key_columns[k] == o.column && !key_seen[k]) {
        key_seen[k] = true;
        ++keys_seen;
      }
    }
  }
  for (size_t k = 0; k < key_seen.size(); ++k) {
    if (!key_seen[k]) order.push_back({entity.key_columns[k], false});
  }
  std::vector<std::string> order_sql;
  absl::StrAppend(&description, "|");
  for (const OrderSpec& o : order) {
    const Column& c = entity.columns[o.column];
    // Explicit NULLS placement, matching the keyset predicate below.
    order_sql.push_back(absl::StrCat(
        c.quoted_name, o.descending ? " DESC NULLS FIRST" : " ASC NULLS LAST"));
    absl::StrAppend(&description, c.name, o.descending ? "-" : "+", ",");
  }
  const uint64_t fingerprint = Fingerprint(description);

  if (!query.page_token.empty()) {
    if (query.offset != 0) {
      return absl::InvalidArgumentError(
          "offset cannot be combined with page_token");
    }
    absl::StatusOr<PageCursor> cursor = DecodePageToken(query.page_token);
    if (!cursor.ok()) return cursor.status();
    if (cursor->query_fingerprint != fingerprint ||
        cursor->last_sort_values.size() != order.size()) {
      return absl::InvalidArgumentError(
          "page_token was issued for a different entity, filter or order");
    }
    bool all_not_null = true, same_direction = true;
    for (const OrderSpec& o : order) {
      all_not_null &=
          !entity.columns[o.column].nullable || entity.IsKeyColumn(o.column);
      same_direction &= o.descending == order[0].descending;
    }
    // Placeholders for the cursor's non-null values, one per sort column (a
    // null one is compared with IS NULL below). A parameter bound but never
    // referenced would fail the statement: PostgreSQL cannot type it
    // ("could not determine data type of parameter $1").
    std::vector<std::string> placeholders;
    for (size_t i = 0; i < order.size(); ++i) {
      const Column& c = entity.columns[order[i].column];
      absl::StatusOr<std::optional<std::string>> text =
          ToParameter(c.name, c.type, cursor->last_sort_values[i]);
      if (!text.ok()) {
        return absl::InvalidArgumentError("page_token is malformed");
      }
      if (!text->has_value()) {
        // No NOT NULL column's row held a null: a forged token.
        if (all_not_null) {
          return absl::InvalidArgumentError("page_token is malformed");
        }
        placeholders.emplace_back();
        continue;
      }
      placeholders.push_back(params.AddText(std::move(*text), c.sql_type));
    }
    if (all_not_null && same_direction) {
      // Row comparison: one index range scan.
      std::vector<std::string> cols;
      for (const OrderSpec& o : order) {
        cols.push_back(entity.columns[o.column].quoted_name);
      }
      conditions.push_back(absl::StrCat("(", absl::StrJoin(cols, ", "),
                                        order[0].descending ? ") < (" : ") > (",
                                        absl::StrJoin(placeholders, ", "),
                                        ")"));
    } else {
      // (c1 after v1) OR (c1 = v1 AND c2 after v2) OR ..., with NULLs last
      // ascending and first descending.
      std::vector<std::string> alternatives;
      std::vector<std::string> equal_prefix;
      for (size_t i = 0; i < order.size(); ++i) {
        const Column& c = entity.columns[order[i].column];
        const bool is_null =
            std::holds_alternative<std::monostate>(cursor->last_sort_values[i]);
        std::string after;
        if (order[i].descending) {
          after = is_null ? absl::StrCat(c.quoted_name, " IS NOT NULL")
                          : absl::StrCat(c.quoted_name, " < ", placeholders[i]);
        } else if (!is_null) {
          after = c.nullable
                      ? absl::StrCat("(", c.quoted_name, " > ", placeholders[i],
                                     " OR ", c.quoted_name, " IS NULL)")
                      : absl::StrCat(c.quoted_name, " > ", placeholders[i]);
        }
        if (!after.empty()) {
          std::vector<std::string> parts = equal_prefix;
          parts.push_back(after);
          alternatives.push_back(
              absl::StrCat("(", absl::StrJoin(parts, " AND "), ")"));
        }
        equal_prefix.push_back(
            is_null ? absl::StrCat(c.quoted_name, " IS NULL")
                    : absl::StrCat(c.quoted_name, " = ", placeholders[i]));
      }
      conditions.push_back(
          alternatives.empty()
              ? std::string("false")
              : absl::StrCat("(", absl::StrJoin(alternatives, " OR "), ")"));
    }
  }

  std::string sql = absl::StrCat("SELECT ", entity.select_list, " FROM ",
                                 entity.qualified_name);
  if (!conditions.empty()) {
    absl::StrAppend(&sql, " WHERE ", absl::StrJoin(conditions, " AND "));
  }
  absl::StrAppend(&sql, " ORDER BY ", absl::StrJoin(order_sql, ", "), " LIMIT ",
                  params.AddText(absl::StrCat(query.limit + 1), "bigint"));
  if (query.offset > 0) {
    absl::StrAppend(&sql, " OFFSET ",
                    params.AddText(absl::StrCat(query.offset), "bigint"));
  }
  if (absl::Status s = params.CheckCount(absl::StrCat("Page of ", entity.name));
      !s.ok()) {
    return s;
  }
  PagePlan plan;
  plan.statement = Statement{std::move(sql), params.params()};
  plan.order = std::move(order);
  plan.fingerprint = fingerprint;
  return plan;
}

}  // namespace rowgate::storage
