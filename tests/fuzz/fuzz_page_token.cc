// Fuzzes page tokens (storage/page_token.h).
//
// Invariants: DecodePageToken never crashes and refuses garbage with
// INVALID_ARGUMENT and a bounded message; whatever it accepts re-encodes to
// a token that decodes to the same cursor; and for every cursor Page can
// issue (any values, up to one per column of an entity), Encode -> Decode
// is the identity, bit for bit (NaN and -0.0 included).
#include <cstring>
#include <string>

#include "fuzz_support.h"
#include "storage/page_token.h"

namespace rowgate::fuzz {
namespace {

bool SameValue(const storage::Value& a, const storage::Value& b) {
  if (a.index() != b.index()) return false;
  if (const double* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    return std::memcmp(x, &y, sizeof(y)) == 0;
  }
  return a == b;
}

bool SameCursor(const storage::PageCursor& a, const storage::PageCursor& b) {
  if (a.query_fingerprint != b.query_fingerprint ||
      a.last_sort_values.size() != b.last_sort_values.size()) {
    return false;
  }
  for (size_t i = 0; i < a.last_sort_values.size(); ++i) {
    if (!SameValue(a.last_sort_values[i], b.last_sort_values[i])) return false;
  }
  return true;
}

void CheckRoundTrip(const storage::PageCursor& cursor) {
  const std::string token = storage::EncodePageToken(cursor);
  absl::StatusOr<storage::PageCursor> decoded = storage::DecodePageToken(token);
  Check(decoded.ok(), absl::StrCat("a token rowgate issued is refused: ",
                                   decoded.status().ToString()));
  Check(SameCursor(cursor, *decoded), "Encode -> Decode changed the cursor");
}

}  // namespace
}  // namespace rowgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rowgate;
  FuzzedDataProvider in(data, size);
  if (in.ConsumeBool()) {
    // Arbitrary text as a token.
    const std::string token = in.ConsumeRemainingBytesAsString();
    absl::StatusOr<storage::PageCursor> cursor =
        storage::DecodePageToken(token);
    if (!cursor.ok()) {
      fuzz::CheckError(cursor.status());
      fuzz::Check(cursor.status().code() == absl::StatusCode::kInvalidArgument,
                  "not INVALID_ARGUMENT");
      return 0;
    }
    fuzz::CheckRoundTrip(*cursor);
    return 0;
  }
  // A cursor as FetchPage builds one: the fingerprint and one value per sort
  // column (the requested order plus the primary key), so up to one per
  // column of a table: 1600 at most in PostgreSQL.
  storage::PageCursor cursor;
  cursor.query_fingerprint = in.ConsumeIntegral<uint64_t>();
  const size_t count = in.ConsumeBool()
                           ? in.ConsumeIntegralInRange<size_t>(0, 1600)
                           : in.ConsumeIntegralInRange<size_t>(0, 20);
  for (size_t i = 0; i < count; ++i) {
    cursor.last_sort_values.push_back(fuzz::ConsumeValue(in));
  }
  fuzz::CheckRoundTrip(cursor);
  return 0;
}
