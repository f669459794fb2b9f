#include "storage/composite_key.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rowgate::storage {
namespace {

// Whether any part may match stored text other than the text asked for
// (see MatchesOtherText in statements.cc): then rows are labelled.
bool AnyTextPart(const Entity& entity) {
  for (int c : entity.key_columns) {
    if (entity.columns[c].type == ColumnType::kText) return true;
  }
  return false;
}

// "(a, b, c)" of the key columns, each prefixed by `alias.` when given.
std::string KeyTuple(const Entity& entity, absl::string_view alias) {
  std::vector<std::string> names;
  for (int c : entity.key_columns) {
    names.push_back(
        alias.empty()
            ? entity.columns[c].quoted_name
            : absl::StrCat(alias, ".", entity.columns[c].quoted_name));
  }
  return absl::StrCat("(", absl::StrJoin(names, ", "), ")");
}

// "unnest($1::t1[], ..., $n::tn[]" (not closed), one array per key column.
std::string UnnestArrays(const Entity& entity) {
  std::vector<std::string> arrays;
  for (size_t i = 0; i < entity.key_columns.size(); ++i) {
    arrays.push_back(absl::StrCat(
        "$", i + 1, "::", entity.columns[entity.key_columns[i]].sql_type,
        "[]"));
  }
  return absl::StrCat("unnest(", absl::StrJoin(arrays, ", "));
}

// "rowgate_k(c1, ..., cn, req)" and "(rowgate_k.c1, ..., rowgate_k.cn)".
std::string LabelAlias(size_t arity) {
  std::string out = "rowgate_k(";
  for (size_t i = 0; i < arity; ++i) absl::StrAppend(&out, "c", i + 1, ", ");
  return absl::StrCat(out, "req)");
}
std::string LabelTuple(size_t arity) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < arity; ++i) {
    parts.push_back(absl::StrCat("rowgate_k.c", i + 1));
  }
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

// One array parameter per key column, then (labelled) the keys themselves.
Params ArrayParams(const Entity& entity, const std::vector<std::string>& keys,
                   bool labelled) {
  const size_t arity = entity.key_columns.size();
  std::vector<std::vector<std::string>> columns(arity);
  std::vector<std::string> kept;
  for (const std::string& key : keys) {
    absl::StatusOr<std::vector<std::string>> parts =
        DecodeCompositeKey(key, arity);
    if (!parts.ok()) continue;  // not a key rowgate made: it matches nothing
    for (size_t i = 0; i < arity; ++i) columns[i].push_back((*parts)[i]);
    kept.push_back(key);
  }
  Params params;
  for (const auto& column : columns) params.push_back(ArrayLiteral(column));
  if (labelled) params.push_back(ArrayLiteral(kept));
  return params;
}

}  // namespace

std::string KeyColumnsText(const Entity& entity) {
  std::vector<std::string> names;
  for (int c : entity.key_columns) names.push_back(entity.columns[c].name);
  return absl::StrCat("(", absl::StrJoin(names, ", "), ")");
}

std::string EncodeCompositeKey(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, parts[i].size(), ":", parts[i]);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeCompositeKey(
    absl::string_view key, size_t arity) {
  std::vector<std::string> parts;
  while (parts.size() < arity) {
    if (!parts.empty()) {
      if (key.empty() || key[0] != ',') break;
      key.remove_prefix(1);
    }
    const size_t colon = key.find(':');
    size_t length;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(key.substr(0, colon), &length) ||
        length > key.size() - colon - 1) {
      break;
    }
    parts.emplace_back(key.substr(colon + 1, length));
    key.remove_prefix(colon + 1 + length);
  }
  if (parts.size() != arity || !key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a composite key of ", arity, " parts"));
  }
  return parts;
}

absl::StatusOr<std::string> CanonicalCompositeKey(
    const Entity& entity, const std::vector<Value>& parts) {
  if (parts.size() != entity.key_columns.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the primary key of ", entity.name, " is ", KeyColumnsText(entity),
        ": a key needs ", entity.key_columns.size(), " values in that order, ",
        "this one has ", parts.size()));
  }
  std::vector<std::string> texts;
  texts.reserve(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const Column& c = entity.columns[entity.key_columns[i]];
    absl::StatusOr<std::string> text = CanonicalKey(c.name, c.type, parts[i]);
    if (!text.ok()) return text.status();
    texts.push_back(std::move(*text));
  }
  return EncodeCompositeKey(texts);
}

std::string CompositeKeyText(const Entity& entity, const Row& row) {
  std::vector<std::string> texts;
  texts.reserve(entity.key_columns.size());
  for (int c : entity.key_columns) texts.push_back(KeyText(row[c]));
  return EncodeCompositeKey(texts);
}

bool CompositeLookupLabelsRows(const Entity& entity) {
  return AnyTextPart(entity);
}

std::string CompositeLookupSql(const Entity& entity) {
  const size_t arity = entity.key_columns.size();
  if (!AnyTextPart(entity)) {
    return absl::StrCat("SELECT ", entity.select_list, " FROM ",
                        entity.qualified_name, " WHERE ", KeyTuple(entity, ""),
                        " IN (SELECT * FROM ", UnnestArrays(entity), "))");
  }
  std::vector<std::string> columns;
  for (const Column& c : entity.columns) {
    columns.push_back(absl::StrCat("rowgate_t.", c.quoted_name));
  }
  return absl::StrCat("SELECT ", absl::StrJoin(columns, ", "),
                      ", rowgate_k.req FROM ", entity.qualified_name,
                      " AS rowgate_t JOIN ", UnnestArrays(entity), ", $",
                      arity + 1, "::text[]) AS ", LabelAlias(arity), " ON ",
                      KeyTuple(entity, "rowgate_t"), " = ", LabelTuple(arity));
}

Statement CompositeLookupStatement(const Entity& entity,
                                   const std::vector<std::string>& keys) {
  return Statement{CompositeLookupSql(entity),
                   ArrayParams(entity, keys, AnyTextPart(entity))};
}

Statement CompositeDeleteStatement(const Entity& entity,
                                   const std::vector<std::string>& keys) {
  const size_t arity = entity.key_columns.size();
  std::vector<std::string> returning;
  for (int c : entity.key_columns) {
    returning.push_back(entity.columns[c].quoted_name);
  }
  // Which requested keys had their row deleted, compared by the columns'
  // own equality: one statement, as for a single-column key.
  return Statement{
      absl::StrCat("WITH rowgate_d AS (DELETE FROM ", entity.qualified_name,
                   " WHERE ", KeyTuple(entity, ""), " IN (SELECT * FROM ",
                   UnnestArrays(entity), ")) RETURNING ",
                   absl::StrJoin(returning, ", "),
                   ") SELECT DISTINCT rowgate_k.req FROM rowgate_d JOIN ",
                   UnnestArrays(entity), ", $", arity + 1, "::text[]) AS ",
                   LabelAlias(arity), " ON ", KeyTuple(entity, "rowgate_d"),
                   " = ", LabelTuple(arity)),
      ArrayParams(entity, keys, true)};
}

absl::StatusOr<std::string> KeyEqualsSql(const Entity& entity,
                                         absl::string_view canonical_key,
                                         Params& params,
                                         absl::string_view table_alias) {
  std::vector<std::string> parts;
  if (entity.composite_key()) {
    absl::StatusOr<std::vector<std::string>> decoded =
        DecodeCompositeKey(canonical_key, entity.key_columns.size());
    if (!decoded.ok()) return decoded.status();
    parts = std::move(*decoded);
  } else {
    parts.emplace_back(canonical_key);
  }
  std::vector<std::string> equalities;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Column& c = entity.columns[entity.key_columns[i]];
    params.push_back(std::move(parts[i]));
    equalities.push_back(
        absl::StrCat(table_alias.empty() ? "" : absl::StrCat(table_alias, "."),
                     c.quoted_name, " = $", params.size(), "::", c.sql_type));
  }
  return absl::StrJoin(equalities, " AND ");
}

}  // namespace rowgate::storage
