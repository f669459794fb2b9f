#include "storage/table_ops.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/composite_key.h"
#include "storage/page_token.h"

namespace rowgate::storage {
namespace {

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

std::string KeyDescription(const Entity& entity, const Value& key) {
  return absl::StrCat(entity.name, " with ", entity.key().name, " ",
                      DescribeValue(key));
}

// "users_groups with (id, user_id, group_id) (17, 1, 13)", from the key's
// canonical text.
std::string KeyTextDescription(const Entity& entity,
                               absl::string_view canonical_key) {
  if (!entity.composite_key()) {
    return absl::StrCat(entity.name, " with ", entity.key().name, " ",
                        Abbreviate(canonical_key));
  }
  absl::StatusOr<std::vector<std::string>> parts =
      DecodeCompositeKey(canonical_key, entity.key_columns.size());
  std::vector<std::string> shown;
  if (parts.ok()) {
    for (const std::string& p : *parts) shown.push_back(Abbreviate(p));
  }
  return absl::StrCat(entity.name, " with ", KeyColumnsText(entity), " (",
                      absl::StrJoin(shown, ", "), ")");
}

// Explains why a guarded UPDATE/DELETE touched no row: the row is gone
// (NOT_FOUND) or its version moved on (ABORTED, naming the stored version).
// `key` (null for a composite key) is shown as sent.
absl::Status ExplainNoMatch(Connection& conn, const Entity& entity,
                            const std::string& key_param, const Value* key,
                            const Value& sent_version) {
  const Column& version = entity.columns[entity.version_column];
  Params params;
  absl::StatusOr<std::string> where = KeyEqualsSql(entity, key_param, params);
  if (!where.ok()) return where.status();
  absl::StatusOr<QueryResult> current =
      conn.Execute(absl::StrCat("SELECT ", version.quoted_name, " FROM ",
                                entity.qualified_name, " WHERE ", *where),
                   params);
  if (!current.ok()) return current.status();
  const std::string described = key != nullptr
                                    ? KeyDescription(entity, *key)
                                    : KeyTextDescription(entity, key_param);
  if (current->rows() == 0) {
    return absl::NotFoundError(absl::StrCat(described, " does not exist"));
  }
  const Value stored = current->is_null(0, 0)
                           ? Value(std::monostate())
                           : ParseText(version.type, current->text(0, 0));
  return absl::AbortedError(absl::StrCat(
      described, " was changed since it was read: its ", version.name,
      " is now ", DescribeValue(stored), ", the request sent ",
      DescribeValue(sent_version), "; read it again and retry"));
}

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

absl::StatusOr<KeyedRows> FetchByKeys(Connection& conn, const Entity& entity,
                                      int key_column,
                                      const std::vector<std::string>& keys) {
  const Statement st = LookupStatement(entity, key_column, keys);
  absl::StatusOr<QueryResult> result = conn.Execute(st.sql, st.params);
  if (!result.ok()) return result.status();
  const bool labelled = LookupLabelsRows(entity, key_column);
  const int label = static_cast<int>(entity.columns.size());
  KeyedRows out;
  out.by_key.reserve(result->rows());
  for (int r = 0; r < result->rows(); ++r) {
    Row row = ReadRow(*result, r, entity);
    std::string key = labelled ? std::string(result->text(r, label))
                      : key_column == kCompositeKeyColumn
                          ? CompositeKeyText(entity, row)
                          : KeyText(row[key_column]);
    out.by_key[std::move(key)].push_back(std::move(row));
  }
  return out;
}

absl::StatusOr<std::vector<Row>> InsertRows(
    Connection& conn, const Entity& entity,
    const std::vector<ColumnValues>& rows) {
  absl::StatusOr<Statement> st = InsertStatement(entity, rows);
  if (!st.ok()) return st.status();
  absl::StatusOr<QueryResult> result = conn.Execute(st->sql, st->params);
  if (!result.ok()) return result.status();
  return ReadRows(*result, entity);
}

absl::StatusOr<Row> UpdateRow(Connection& conn, const Entity& entity,
                              const ColumnValues& values) {
  absl::StatusOr<UpdatePlan> plan = UpdateStatement(entity, values);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<QueryResult> result =
      conn.Execute(plan->statement.sql, plan->statement.params);
  if (!result.ok()) return result.status();
  if (result->rows() == 1) return ReadRow(*result, 0, entity);

  if (plan->version == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        plan->key != nullptr ? KeyDescription(entity, *plan->key)
                             : KeyTextDescription(entity, plan->key_text),
        " does not exist"));
  }
  return ExplainNoMatch(conn, entity, plan->key_text, plan->key,
                        *plan->version);
}

namespace {
// Runs a delete plan; `keys` (the first key as sent, for messages) may be
// null.
absl::StatusOr<std::vector<bool>> RunDelete(
    Connection& conn, const Entity& entity, const DeletePlan& plan_,
    const Value* keys, const std::optional<Value>& expected_version);
}  // namespace

absl::StatusOr<std::vector<bool>> DeleteRows(
    Connection& conn, const Entity& entity, const std::vector<Value>& keys,
    const std::optional<Value>& expected_version) {
  absl::StatusOr<DeletePlan> plan =
      DeleteStatement(entity, keys, expected_version);
  if (!plan.ok()) return plan.status();
  return RunDelete(conn, entity, *plan, keys.empty() ? nullptr : keys.data(),
                   expected_version);
}

absl::StatusOr<std::vector<bool>> DeleteRowsForKeys(
    Connection& conn, const Entity& entity,
    std::vector<std::string> canonical_keys,
    const std::optional<Value>& expected_version) {
  absl::StatusOr<DeletePlan> plan = DeleteStatementForKeys(
      entity, std::move(canonical_keys), expected_version);
  if (!plan.ok()) return plan.status();
  return RunDelete(conn, entity, *plan, nullptr, expected_version);
}

namespace {
absl::StatusOr<std::vector<bool>> RunDelete(
    Connection& conn, const Entity& entity, const DeletePlan& plan_,
    const Value* keys, const std::optional<Value>& expected_version) {
  const DeletePlan* plan = &plan_;
  std::vector<bool> deleted(plan->canonical_keys.size(), false);
  if (deleted.empty()) return deleted;
  absl::StatusOr<QueryResult> result =
      conn.Execute(plan->statement.sql, plan->statement.params);
  if (!result.ok()) return result.status();
  if (plan->guarded) {
    if (result->rows() == 1) {
      deleted[0] = true;
      return deleted;
    }
    absl::Status why = ExplainNoMatch(conn, entity, plan->canonical_keys[0],
                                      keys, *expected_version);
    if (absl::IsNotFound(why)) return deleted;  // nothing to delete
    return why;
  }
  absl::flat_hash_set<std::string> gone;
  for (int r = 0; r < result->rows(); ++r) {
    gone.insert(std::string(result->text(r, 0)));
  }
  for (size_t i = 0; i < deleted.size(); ++i) {
    deleted[i] = gone.contains(plan->canonical_keys[i]);
  }
  return deleted;
}
}  // namespace

absl::StatusOr<PageResult> FetchPage(Connection& conn, const Entity& entity,
                                     const PageQuery& query) {
  absl::StatusOr<PagePlan> plan = PageStatement(entity, query);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<QueryResult> result =
      conn.Execute(plan->statement.sql, plan->statement.params);
  if (!result.ok()) return result.status();
  PageResult page;
  page.rows = ReadRows(*result, entity);
  if (static_cast<int>(page.rows.size()) > query.limit) {
    page.rows.resize(query.limit);
    PageCursor cursor;
    cursor.query_fingerprint = plan->fingerprint;
    for (const OrderSpec& o : plan->order) {
      cursor.last_sort_values.push_back(page.rows.back()[o.column]);
    }
    page.next_page_token = EncodePageToken(cursor);
  }
  return page;
}

}  // namespace rowgate::storage
