// The SQL text and bound parameters of every statement table_ops.h runs,
// built without a connection: identifiers only from the catalog (quoted),
// fixed keywords and literals, every value a "$n::type" parameter. Split
// from executing them so the building can be checked on its own
// (tests/fuzz/fuzz_statements.cc).
//
// Pure functions; thread-safe. Values of the wrong kind for a column, and
// requests no statement can serve, give INVALID_ARGUMENT naming what was
// wrong. A plan holds pointers into its inputs, which must outlive it.
//
// Example:
//   absl::StatusOr<Statement> insert = InsertStatement(entity, rows);
//   if (insert.ok()) conn.Execute(insert->sql, insert->params);
#ifndef ROWGATE_STORAGE_STATEMENTS_H_
#define ROWGATE_STORAGE_STATEMENTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/value.h"

namespace rowgate::storage {

// The most parameters one statement can bind: the protocol counts them in
// 16 bits.
inline constexpr size_t kMaxBoundParameters = 65535;

// Column index -> value, for the columns a request names.
using ColumnValues = std::vector<std::pair<int, Value>>;

// SQL with placeholders $1..$N, N == params.size().
struct Statement {
  std::string sql;
  Params params;
};

// SELECT every column WHERE key_column = ANY($1). For text keys (which may
// match stored text that differs: char(n), citext) each row also carries
// the requested key it matched, after the entity's columns.
std::string LookupSql(const Entity& entity, int key_column);
bool LookupLabelsRows(const Entity& entity, int key_column);
// LookupSql with `keys` (canonical key texts) as its one parameter.
Statement LookupStatement(const Entity& entity, int key_column,
                          const std::vector<std::string>& keys);

// INSERT ... VALUES (...), (...) RETURNING every column; columns a row
// leaves out take their DEFAULT.
absl::StatusOr<Statement> InsertStatement(
    const Entity& entity, const std::vector<ColumnValues>& rows);

// UPDATE ... SET the named columns (and a new version) WHERE key = $k AND
// version IS NOT DISTINCT FROM $v RETURNING every column.
// With a composite key, `values` must hold every key column (else
// INVALID_ARGUMENT naming the missing ones), and the key is `key_parts`.
struct UpdatePlan {
  Statement statement;
  const Value* key = nullptr;      // into the values given; null if composite
  std::string key_text;            // the key's canonical text
  const Value* version = nullptr;  // null: the entity has no version column
  std::vector<const Value*> key_parts;  // composite: in the key's order
};
absl::StatusOr<UpdatePlan> UpdateStatement(const Entity& entity,
                                           const ColumnValues& values);
absl::StatusOr<UpdatePlan> CompositeUpdateStatement(const Entity& entity,
                                                    const ColumnValues& values);
// The UPDATE for a key already checked (key_text canonical).
absl::StatusOr<UpdatePlan> UpdateStatementWhere(const Entity& entity,
                                                const ColumnValues& values,
                                                const Value* key,
                                                std::string key_text,
                                                const Value* version);

// DELETE by primary keys: guarded by `expected_version` (one key) RETURNING
// the key, or for any number of keys RETURNING which requested keys went.
// With no keys the statement is empty (nothing to run).
struct DeletePlan {
  Statement statement;
  std::vector<std::string> canonical_keys;  // per requested key
  bool guarded = false;
};
absl::StatusOr<DeletePlan> DeleteStatement(
    const Entity& entity, const std::vector<Value>& keys,
    const std::optional<Value>& expected_version);
// The same for keys already canonical (CanonicalKey, or for a composite key
// CanonicalCompositeKey): the only form for an entity with a composite key.
absl::StatusOr<DeletePlan> DeleteStatementForKeys(
    const Entity& entity, std::vector<std::string> canonical_keys,
    const std::optional<Value>& expected_version);

enum class FilterOp {
  kEqual,
  kNotEqual,
  kLess,
  kLessOrEqual,
  kGreater,
  kGreaterOrEqual,
  kIn,
  kIsNull,
  kIsNotNull,
};

struct FilterSpec {
  int column = -1;
  FilterOp op = FilterOp::kEqual;
  std::vector<Value> values;  // one for comparisons, any number for kIn
};

struct OrderSpec {
  int column = -1;
  bool descending = false;
};

struct PageQuery {
  std::vector<FilterSpec> filters;
  // The primary key's columns are appended as tie-break.
  std::vector<OrderSpec> order;
  int limit = 50;
  int64_t offset = 0;
  std::string page_token;
};

// SELECT ... WHERE filters AND (sort key) after (the token's cursor)
// ORDER BY the sort key LIMIT limit+1 [OFFSET offset]; `order` is the sort
// key (the requested order up to the primary key, which ends it), and the
// next page's token carries `fingerprint` and one value per sort column.
struct PagePlan {
  Statement statement;
  std::vector<OrderSpec> order;
  uint64_t fingerprint = 0;
};
absl::StatusOr<PagePlan> PageStatement(const Entity& entity,
                                       const PageQuery& query);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_STATEMENTS_H_
