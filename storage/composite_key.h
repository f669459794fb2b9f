// Composite primary keys (a key of several columns, e.g. the notebook's
// users_groups (id, user_id, group_id)): their canonical key text, which the
// loader merges and deduplicates like any other key text, and the lookup and
// delete statements for a batch of them.
//
// A composite key's canonical text is its parts' canonical texts
// (CanonicalKey, one per key column in the key's order), each written as
// "<bytes>:<text>" and joined by ",": e.g. (17, 1, 13) -> "2:17,1:1,2:13".
// The length prefixes make it unambiguous for any text, commas included.
//
// A batch is looked up by one statement whatever its size:
//   WHERE (k1, k2, k3) IN (SELECT * FROM unnest($1::t1[], $2::t2[], $3::t3[]))
// (bench/composite_lookup.sh measured it against `= ANY($1::record[])` and
// a VALUES list; README "Composite keys"). Where a part is text (a char(n) or
// citext key may be stored as other text than asked for), the unnest is
// joined instead and each row carries the requested key it matched, as
// single-column text lookups do (statements.h).
//
// Pure functions; thread-safe.
#ifndef ROWGATE_STORAGE_COMPOSITE_KEY_H_
#define ROWGATE_STORAGE_COMPOSITE_KEY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/catalog.h"
#include "storage/statements.h"
#include "storage/value.h"

namespace rowgate::storage {

// The key column a lookup names (LoadRequest::key_column, FetchByKeys,
// LookupStatement) to mean "the entity's whole composite primary key".
inline constexpr int kCompositeKeyColumn = -2;

// "(id, user_id, group_id)": the key's columns, for messages.
std::string KeyColumnsText(const Entity& entity);

// The canonical text of canonical key parts (see above).
std::string EncodeCompositeKey(const std::vector<std::string>& parts);
// Its parts again; INVALID_ARGUMENT unless `key` holds exactly `arity`.
absl::StatusOr<std::vector<std::string>> DecodeCompositeKey(
    absl::string_view key, size_t arity);

// The canonical key text of `parts`, one value per key column of `entity`
// in the key's order. INVALID_ARGUMENT naming the key's columns for a wrong
// count, and naming the column for a null or a value of the wrong kind.
absl::StatusOr<std::string> CanonicalCompositeKey(
    const Entity& entity, const std::vector<Value>& parts);

// The canonical key text of a stored row's key (equal to
// CanonicalCompositeKey of the same values).
std::string CompositeKeyText(const Entity& entity, const Row& row);

// The batch lookup by `keys` (canonical composite key texts, distinct):
// every column, then (where CompositeLookupLabelsRows) the requested key.
bool CompositeLookupLabelsRows(const Entity& entity);
std::string CompositeLookupSql(const Entity& entity);
Statement CompositeLookupStatement(const Entity& entity,
                                   const std::vector<std::string>& keys);

// DELETE by composite keys (canonical texts) RETURNING, as one text column,
// the requested keys whose row went.
Statement CompositeDeleteStatement(const Entity& entity,
                                   const std::vector<std::string>& keys);

// "k1 = $a AND k2 = $b ..." for one key of `entity` (simple or composite,
// given as its canonical text), appending its parts to `params`.
// INVALID_ARGUMENT for a composite text of the wrong arity.
absl::StatusOr<std::string> KeyEqualsSql(const Entity& entity,
                                         absl::string_view canonical_key,
                                         Params& params,
                                         absl::string_view table_alias = "");

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_COMPOSITE_KEY_H_
