// Page tokens: opaque keyset cursors for Page.
//
// A token holds the sort-key values of the last row served and a fingerprint
// of the query (entity, filters, order) it belongs to, so a token reused with
// another query is refused instead of silently paging wrongly. Keyset paging
// (WHERE sort key > last) stays correct while rows are inserted, unlike
// OFFSET. Tokens are URL-safe base64. Pure functions; thread-safe.
#ifndef ROWGATE_STORAGE_PAGE_TOKEN_H_
#define ROWGATE_STORAGE_PAGE_TOKEN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/value.h"

namespace rowgate::storage {

// The most sort values a token holds: one per column of the sort key, and a
// PostgreSQL table has at most 1600 columns.
inline constexpr size_t kMaxPageCursorValues = 1600;

struct PageCursor {
  uint64_t query_fingerprint = 0;
  std::vector<Value> last_sort_values;
};

std::string EncodePageToken(const PageCursor& cursor);

// INVALID_ARGUMENT when `token` is not a token rowgate issued.
absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token);

// A stable 64-bit fingerprint of a query description (FNV-1a).
uint64_t Fingerprint(absl::string_view description);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_PAGE_TOKEN_H_
