// Includes (related rows in one call) between the API and the loader's
// IncludeWalk: requests' Include trees resolved against the catalog, and
// the rows a walk found written into the answer's Row.related.
//
// Pure functions; thread-safe. Resolution is INVALID_ARGUMENT naming the
// include path for an unknown relation or column, a relation given twice at
// one level, or a tree deeper than `max_depth` levels (cycles such as
// users.groups.users.groups... end there).
#ifndef ROWGATE_SERVICE_INCLUDES_H_
#define ROWGATE_SERVICE_INCLUDES_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_field.h"
#include "loader/include_walk.h"
#include "rowgate/v1/rowgate.pb.h"
#include "storage/catalog.h"

namespace rowgate::service {

// The most includes one request may name, at every level together.
inline constexpr int kMaxIncludes = 64;

// The plans for `includes` of rows of `entity`; null when there are none.
absl::StatusOr<std::shared_ptr<const std::vector<loader::IncludePlan>>>
ResolveIncludes(const storage::Catalog& catalog, const storage::Entity& entity,
                const google::protobuf::RepeatedPtrField<v1::Include>& includes,
                int max_depth);

// Writes the rows related to `row` (of `entity`) into out->related, nested.
void AttachIncluded(const std::vector<loader::IncludePlan>& plans,
                    const std::vector<loader::IncludedRows>& found,
                    const storage::Entity& entity, const storage::Row& row,
                    v1::Row* out);

// Every row of a lookup's answer, for the walk's first level.
std::vector<const storage::Row*> AllRows(const loader::LoadResult& result);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_INCLUDES_H_
