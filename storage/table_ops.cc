#include "storage/table_ops.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

// The entity's columns of result row `r` (a lookup appends the requested key
// after them; it is not read here).
Row ReadRow(const QueryResult& result, int r, const Entity& entity) {
  Row row;
  row.reserve(entity.columns.size());
  const int columns = static_cast<int>(entity.columns.size());
  result.VisitRow(r, [&](int c, absl::string_view text, bool is_null) {
    if (c >= columns) return;
    if (is_null) {
      row.emplace_back(std::monostate());
    } else {
      row.push_back(ParseText(entity.columns[c].type, text));
    }
  });
  return row;
}

std::vector<Row> ReadRows(const QueryResult& result, const Entity& entity) {
  std::vector<Row> rows;
  rows.reserve(result.rows());
  for (int r = 0; r < result.rows(); ++r) {
    rows.push_back(ReadRow(result, r, entity));
  }
  return rows;
}

// "now" for a version column, in its own type.
std::string NowFor(const Column& column) {
  return column.type == ColumnType::kTimestampTz
             ? "clock_timestamp()"
             : "timezone('UTC', clock_timestamp())";
}

std::string KeyDescription(const Entity& entity, const Value& key) {
  return absl::StrCat(entity.name, " with ", entity.key().name, " ",
                      DescribeValue(key));
}

// Explains why a guarded UPDATE/DELETE touched no row: the row is gone
// (NOT_FOUND) or its version moved on (ABORTED, naming the stored version).
absl::Status ExplainNoMatch(Connection& conn, const Entity& entity,
                            const std::string& key_param, const Value& key,
                            const Value& sent_version) {
  const Column& version = entity.columns[entity.version_column];
  absl::StatusOr<QueryResult> current = conn.Execute(
      absl::StrCat("SELECT ", version.quoted_name, " FROM ",
                   entity.qualified_name, " WHERE ", entity.key().quoted_name,
                   " = $1::", entity.key().sql_type),
      {key_param});
  if (!current.ok()) return current.status();
  if (current->rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat(KeyDescription(entity, key), " does not exist"));
  }
  const Value stored = current->is_null(0, 0)
                           ? Value(std::monostate())
                           : ParseText(version.type, current->text(0, 0));
  return absl::AbortedError(absl::StrCat(
      KeyDescription(entity, key), " was changed since it was read: its ",
      version.name, " is now ", DescribeValue(stored), ", the request sent ",
      DescribeValue(sent_version), "; read it again and retry"));
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

std::string DescribeValue(const Value& value) {
  if (const Timestamp* ts = std::get_if<Timestamp>(&value)) {
    std::string text = FormatTimestamp(*ts);
    text[text.find(' ')] = 'T';
    return text + "Z";
  }
  if (std::holds_alternative<std::monostate>(value)) return "null";
  if (const std::string* s = std::get_if<std::string>(&value)) {
    return absl::StrCat("\"", Abbreviate(*s), "\"");
  }
  if (const int64_t* v = std::get_if<int64_t>(&value)) return absl::StrCat(*v);
  if (const double* v = std::get_if<double>(&value)) return absl::StrCat(*v);
  if (const bool* v = std::get_if<bool>(&value)) return *v ? "true" : "false";
  return "<bytes>";
}

std::string LookupSql(const Entity& entity, int key_column) {
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

absl::StatusOr<KeyedRows> FetchByKeys(Connection& conn, const Entity& entity,
                                      int key_column,
                                      const std::vector<std::string>& keys) {
  absl::StatusOr<QueryResult> result =
      conn.Execute(LookupSql(entity, key_column), {ArrayLiteral(keys)});
  if (!result.ok()) return result.status();
  const bool labelled = MatchesOtherText(entity.columns[key_column].type);
  const int label = static_cast<int>(entity.columns.size());
  KeyedRows out;
  out.by_key.reserve(result->rows());
  for (int r = 0; r < result->rows(); ++r) {
    Row row = ReadRow(*result, r, entity);
    std::string key = labelled ? std::string(result->text(r, label))
                               : KeyText(row[key_column]);
    out.by_key[std::move(key)].push_back(std::move(row));
  }
  return out;
}

absl::StatusOr<std::vector<Row>> InsertRows(
    Connection& conn, const Entity& entity,
    const std::vector<ColumnValues>& rows) {
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
  if (columns.empty()) columns.push_back(entity.primary_key);  // all DEFAULT

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
  const std::string sql = absl::StrCat("INSERT INTO ", entity.qualified_name,
                                       " (", absl::StrJoin(names, ", "),
                                       ") VALUES ", absl::StrJoin(tuples, ", "),
                                       " RETURNING ", entity.select_list);
  if (absl::Status s =
          params.CheckCount(absl::StrCat("Insert into ", entity.name));
      !s.ok()) {
    return s;
  }
  absl::StatusOr<QueryResult> result = conn.Execute(sql, params.params());
  if (!result.ok()) return result.status();
  return ReadRows(*result, entity);
}

absl::StatusOr<Row> UpdateRow(Connection& conn, const Entity& entity,
                              const ColumnValues& values) {
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
  if (entity.version_column >= 0 && version == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Update of ", entity.name, " needs the row's \"",
                     entity.columns[entity.version_column].name,
                     "\" as it was read (optimistic concurrency)"));
  }
  ParamList params;
  std::vector<std::string> assignments;
  for (const auto& [column, value] : values) {
    if (column == entity.primary_key || column == entity.version_column) {
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
  const std::string key_param =
      params.AddText(*key_text, entity.key().sql_type);
  std::string where = absl::StrCat(entity.key().quoted_name, " = ", key_param);
  if (version != nullptr) {
    absl::StatusOr<std::string> p =
        params.Add(entity.columns[entity.version_column], *version);
    if (!p.ok()) return p.status();
    absl::StrAppend(&where, " AND ",
                    entity.columns[entity.version_column].quoted_name,
                    " IS NOT DISTINCT FROM ", *p);
  }
  const std::string sql =
      absl::StrCat("UPDATE ", entity.qualified_name, " SET ",
                   absl::StrJoin(assignments, ", "), " WHERE ", where,
                   " RETURNING ", entity.select_list);
  absl::StatusOr<QueryResult> result = conn.Execute(sql, params.params());
  if (!result.ok()) return result.status();
  if (result->rows() == 1) return ReadRow(*result, 0, entity);

  if (version == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(KeyDescription(entity, *key), " does not exist"));
  }
  return ExplainNoMatch(conn, entity, **key_text, *key, *version);
}

absl::StatusOr<std::vector<bool>> DeleteRows(
    Connection& conn, const Entity& entity, const std::vector<Value>& keys,
    const std::optional<Value>& expected_version) {
  std::vector<std::string> canonical;
  canonical.reserve(keys.size());
  for (const Value& key : keys) {
    absl::StatusOr<std::string> k =
        CanonicalKey(entity.key().name, entity.key().type, key);
    if (!k.ok()) return k.status();
    canonical.push_back(std::move(*k));
  }
  std::vector<bool> deleted(keys.size(), false);
  if (keys.empty()) return deleted;

  if (expected_version.has_value()) {
    if (entity.version_column < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("entity ", entity.name,
                       " has no version column; omit "
                       "expected_version"));
    }
    if (keys.size() != 1) {
      return absl::InvalidArgumentError(
          "expected_version needs exactly one key");
    }
    ParamList params;
    const std::string key_param =
        params.AddText(canonical[0], entity.key().sql_type);
    const Column& v = entity.columns[entity.version_column];
    absl::StatusOr<std::string> version_param =
        params.Add(v, *expected_version);
    if (!version_param.ok()) return version_param.status();
    absl::StatusOr<QueryResult> result = conn.Execute(
        absl::StrCat("DELETE FROM ", entity.qualified_name, " WHERE ",
                     entity.key().quoted_name, " = ", key_param, " AND ",
                     v.quoted_name, " IS NOT DISTINCT FROM ", *version_param,
                     " RETURNING ", entity.key().quoted_name),
        params.params());
    if (!result.ok()) return result.status();
    if (result->rows() == 1) {
      deleted[0] = true;
      return deleted;
    }
    absl::Status why =
        ExplainNoMatch(conn, entity, canonical[0], keys[0], *expected_version);
    if (absl::IsNotFound(why)) return deleted;  // nothing to delete
    return why;
  }

  // Which requested keys had their row deleted, compared by the column's
  // own equality (a char(n) or citext key is stored as other text than
  // asked for): one statement.
  const Column& key = entity.key();
  absl::StatusOr<QueryResult> result = conn.Execute(
      absl::StrCat("WITH rowgate_d AS (DELETE FROM ", entity.qualified_name,
                   " WHERE ", key.quoted_name, " = ANY($1::", key.sql_type,
                   "[]) RETURNING ", key.quoted_name,
                   " AS rowgate_key) SELECT DISTINCT rowgate_k.req FROM "
                   "rowgate_d JOIN unnest($1::text[]) AS rowgate_k(req) ON "
                   "rowgate_d.rowgate_key = rowgate_k.req::",
                   key.sql_type),
      {ArrayLiteral(canonical)});
  if (!result.ok()) return result.status();
  absl::flat_hash_set<std::string> gone;
  for (int r = 0; r < result->rows(); ++r) {
    gone.insert(std::string(result->text(r, 0)));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    deleted[i] = gone.contains(canonical[i]);
  }
  return deleted;
}

absl::StatusOr<PageResult> FetchPage(Connection& conn, const Entity& entity,
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

  // The sort key: the requested order, then the primary key, which makes the
  // order total (nothing after it matters).
  std::vector<OrderSpec> order;
  bool has_key = false;
  for (const OrderSpec& o : query.order) {
    if (has_key) break;
    order.push_back(o);
    has_key = o.column == entity.primary_key;
  }
  if (!has_key) order.push_back({entity.primary_key, false});
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
    // Placeholders for the cursor's values, one per sort column.
    std::vector<std::string> placeholders;
    for (size_t i = 0; i < order.size(); ++i) {
      const Column& c = entity.columns[order[i].column];
      absl::StatusOr<std::optional<std::string>> text =
          ToParameter(c.name, c.type, cursor->last_sort_values[i]);
      if (!text.ok()) {
        return absl::InvalidArgumentError("page_token is malformed");
      }
      placeholders.push_back(params.AddText(std::move(*text), c.sql_type));
    }
    bool all_not_null = true, same_direction = true;
    for (const OrderSpec& o : order) {
      all_not_null &=
          !entity.columns[o.column].nullable || o.column == entity.primary_key;
      same_direction &= o.descending == order[0].descending;
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
  absl::StatusOr<QueryResult> result = conn.Execute(sql, params.params());
  if (!result.ok()) return result.status();
  PageResult page;
  page.rows = ReadRows(*result, entity);
  if (static_cast<int>(page.rows.size()) > query.limit) {
    page.rows.resize(query.limit);
    PageCursor cursor;
    cursor.query_fingerprint = fingerprint;
    for (const OrderSpec& o : order) {
      cursor.last_sort_values.push_back(page.rows.back()[o.column]);
    }
    page.next_page_token = EncodePageToken(cursor);
  }
  return page;
}

}  // namespace rowgate::storage
