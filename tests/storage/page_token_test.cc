// Page tokens as FetchPage issues them (found by tests/fuzz/fuzz_page_token).
#include "storage/page_token.h"

#include <gtest/gtest.h>

namespace rowgate::storage {
namespace {

// A sort key of more than 64 columns (a wide table ordered by many of its
// columns) gave a token that DecodePageToken refused as malformed, so the
// second page of such a query could never be read.
TEST(PageTokenTest, TokensWithOneValuePerColumnOfAWideTableDecode) {
  for (size_t count : {size_t{65}, size_t{200}, kMaxPageCursorValues}) {
    PageCursor cursor;
    cursor.query_fingerprint = 42;
    for (size_t i = 0; i < count; ++i) {
      cursor.last_sort_values.emplace_back(std::in_place_type<int64_t>, i);
    }
    absl::StatusOr<PageCursor> decoded =
        DecodePageToken(EncodePageToken(cursor));
    ASSERT_TRUE(decoded.ok()) << count << " values: " << decoded.status();
    EXPECT_EQ(decoded->last_sort_values, cursor.last_sort_values);
  }
}

// Beyond any table's width a token is still refused, before reading on.
TEST(PageTokenTest, TokensWithMoreValuesThanATableHasColumnsAreMalformed) {
  PageCursor cursor;
  cursor.last_sort_values.assign(kMaxPageCursorValues + 1, Value(true));
  absl::StatusOr<PageCursor> decoded = DecodePageToken(EncodePageToken(cursor));
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rowgate::storage
