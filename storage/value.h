// Values as rowgate carries them between PostgreSQL and its callers, and the
// conversions to and from PostgreSQL's text format.
//
// A Value is a plain variant: cheap to move, no gRPC or libpqxx types, so the
// loader can hold and share rows without knowing either. A Row is a vector of
// Values aligned with its Entity's columns (see catalog.h).
// All functions here are pure and thread-safe.
#ifndef ROWGATE_STORAGE_VALUE_H_
#define ROWGATE_STORAGE_VALUE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rowgate::storage {

struct Bytes {
  std::string data;
  bool operator==(const Bytes& other) const { return data == other.data; }
};

// Microseconds since 1970-01-01 00:00:00 UTC. A `timestamp without time zone`
// is read as UTC wall-clock time.
struct Timestamp {
  int64_t micros = 0;
  bool operator==(const Timestamp& other) const {
    return micros == other.micros;
  }
};

using Value = std::variant<std::monostate, int64_t, double, std::string, bool,
                           Bytes, Timestamp>;
using Row = std::vector<Value>;

// How rowgate understands a column's PostgreSQL type.
enum class ColumnType {
  kInt16,
  kInt32,
  kInt64,
  kFloat32,
  kFloat64,
  kNumeric,  // exact: carried as a string
  kText,     // text, varchar, char
  kBool,
  kBytes,
  kTimestamp,
  kTimestampTz,
  kDate,  // carried as "YYYY-MM-DD"
  kUuid,
  kJson,
  kJsonb,
  kOther,  // any other type: read and written as its text form
};

// Maps pg_type.typname (e.g. "int8", "varchar") to a ColumnType.
ColumnType ColumnTypeFromTypname(absl::string_view typname);

// The name of the Value alternative a column type is carried in, as the API
// names it ("int64_value", "string_value", ...).
absl::string_view ValueKindName(ColumnType type);

// The name of the alternative `value` holds, for error messages.
absl::string_view ValueKindName(const Value& value);

// Parses PostgreSQL's text output for a column of `type`. Never fails: text
// it cannot interpret (e.g. timestamp 'infinity') is kept as a string.
Value ParseText(ColumnType type, absl::string_view text);

// Renders `value` as the text of a bound parameter for a column of `type`
// (std::nullopt for SQL NULL). INVALID_ARGUMENT, naming `column`, when the
// value's kind does not fit the column.
absl::StatusOr<std::optional<std::string>> ToParameter(absl::string_view column,
                                                       ColumnType type,
                                                       const Value& value);

// Whether a column of `type` can be used as a lookup key.
bool IsKeyType(ColumnType type);

// The canonical text of a lookup key for a column of `type`: equal keys give
// equal text, and it equals KeyText() of the stored value. INVALID_ARGUMENT for
// a null or a value of the wrong kind.
absl::StatusOr<std::string> CanonicalKey(absl::string_view column,
                                         ColumnType type, const Value& value);

// The canonical key text of a stored key value (see CanonicalKey).
std::string KeyText(const Value& value);

// A PostgreSQL array literal ("{"a","b"}") of the given elements, each quoted
// and escaped, to be bound as one parameter and cast to `type[]`.
std::string ArrayLiteral(const std::vector<std::string>& elements);

// Formats a timestamp as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC).
std::string FormatTimestamp(Timestamp ts);

// `text` as error messages echo it: whole when at most `max_bytes`, else its
// first `max_bytes` (cut on a UTF-8 character boundary) and "…(N bytes)", so
// a huge identifier or value cannot blow up a status message.
std::string Abbreviate(absl::string_view text, size_t max_bytes = 64);

// The earliest timestamp rowgate writes: 0001-01-01 00:00:00 UTC (earlier
// ones would need PostgreSQL's "BC" notation).
inline constexpr int64_t kMinTimestampMicros = -62135596800LL * 1000000;

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_VALUE_H_
