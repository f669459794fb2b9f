// Shared by the fuzz targets: a catalog whose entity has a column of every
// ColumnType, values drawn from fuzzer bytes, and the checks every returned
// status must pass. Header-only; each target is one binary.
#ifndef ROWGATE_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define ROWGATE_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/catalog.h"
#include "storage/value.h"

namespace rowgate::fuzz {

// The longest status message a rowgate error may carry: names and values
// from a request are abbreviated in messages, and every message sent is cut
// to service::kMaxStatusMessageBytes (900) plus a short mark, so no request
// can make one longer (gRPC sends it in trailing metadata, bounded at 8 KiB).
constexpr size_t kMaxMessage = 1024;

// Aborts (a finding) with `what` when `ok` is false.
inline void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "invariant violated: %s\n", what.c_str());
  std::abort();
}

// A non-OK status from validation: a client error with a short message.
inline void CheckError(const absl::Status& status) {
  Check(!status.ok(), "CheckError on OK");
  Check(status.code() != absl::StatusCode::kUnknown &&
            status.code() != absl::StatusCode::kInternal,
        absl::StrCat("unexpected code: ", status.ToString()));
  Check(!status.message().empty(), "empty error message");
  Check(status.message().size() <= kMaxMessage,
        absl::StrCat("error message of ", status.message().size(),
                     " bytes: ", status.message().substr(0, 200), "..."));
}

constexpr storage::ColumnType kAllTypes[] = {
    storage::ColumnType::kInt16,       storage::ColumnType::kInt32,
    storage::ColumnType::kInt64,       storage::ColumnType::kFloat32,
    storage::ColumnType::kFloat64,     storage::ColumnType::kNumeric,
    storage::ColumnType::kText,        storage::ColumnType::kBool,
    storage::ColumnType::kBytes,       storage::ColumnType::kTimestamp,
    storage::ColumnType::kTimestampTz, storage::ColumnType::kDate,
    storage::ColumnType::kUuid,        storage::ColumnType::kJson,
    storage::ColumnType::kJsonb,       storage::ColumnType::kOther,
};

// Column names and SQL types of the entity "all_types", in order; column 0
// ("id", bigint) is the primary key, "version" the version column.
struct ColumnSpec {
  const char* name;
  const char* sql_type;
  storage::ColumnType type;
};
constexpr ColumnSpec kColumns[] = {
    {"id", "int8", storage::ColumnType::kInt64},
    {"small", "int2", storage::ColumnType::kInt16},
    {"medium", "int4", storage::ColumnType::kInt32},
    {"real_number", "float4", storage::ColumnType::kFloat32},
    {"double_number", "float8", storage::ColumnType::kFloat64},
    {"amount", "numeric", storage::ColumnType::kNumeric},
    {"label", "text", storage::ColumnType::kText},
    {"flag", "bool", storage::ColumnType::kBool},
    {"blob", "bytea", storage::ColumnType::kBytes},
    {"version", "timestamp", storage::ColumnType::kTimestamp},
    {"happened_at", "timestamptz", storage::ColumnType::kTimestampTz},
    {"birthday", "date", storage::ColumnType::kDate},
    {"external_id", "uuid", storage::ColumnType::kUuid},
    {"doc", "json", storage::ColumnType::kJson},
    {"docb", "jsonb", storage::ColumnType::kJsonb},
    {"place", "point", storage::ColumnType::kOther},
    {"Mixed Case \"quoted\"", "text", storage::ColumnType::kText},
};

// "all_types" (every column type) and "pairs" (a text primary key), as
// storage::Catalog::Load would describe them.
inline std::shared_ptr<const storage::Catalog> AllTypesCatalog() {
  storage::Entity all;
  all.name = "all_types";
  all.qualified_name = "\"public\".\"all_types\"";
  for (const ColumnSpec& spec : kColumns) {
    storage::Column c;
    c.name = spec.name;
    c.quoted_name = storage::QuoteIdentifier(spec.name);
    c.type_name = spec.sql_type;
    c.sql_type = spec.sql_type;
    c.type = spec.type;
    all.columns.push_back(std::move(c));
  }
  all.columns[0].nullable = false;
  all.columns[0].has_default = true;
  all.columns[6].nullable = false;  // label
  all.primary_key = 0;
  all.version_column = 9;

  storage::Entity pairs;
  pairs.name = "pairs";
  pairs.qualified_name = "\"other schema\".\"pairs\"";
  for (const char* name : {"k", "v"}) {
    storage::Column c;
    c.name = name;
    c.quoted_name = storage::QuoteIdentifier(name);
    c.type_name = "text";
    c.sql_type = "text";
    c.type = storage::ColumnType::kText;
    pairs.columns.push_back(std::move(c));
  }
  pairs.columns[0].nullable = false;
  pairs.primary_key = 0;
  std::vector<storage::Entity> entities;
  entities.push_back(std::move(all));
  entities.push_back(std::move(pairs));
  return storage::Catalog::FromEntities(std::move(entities));
}

// Any Value, of any alternative, from the fuzzer's bytes.
inline storage::Value ConsumeValue(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 6)) {
    case 0:
      return std::monostate();
    case 1:
      return in.ConsumeIntegral<int64_t>();
    case 2:
      return in.ConsumeFloatingPoint<double>();
    case 3:
      return in.ConsumeRandomLengthString(64);
    case 4:
      return in.ConsumeBool();
    case 5:
      return storage::Bytes{in.ConsumeRandomLengthString(64)};
    default:
      return storage::Timestamp{in.ConsumeIntegral<int64_t>()};
  }
}

}  // namespace rowgate::fuzz

#endif  // ROWGATE_TESTS_FUZZ_FUZZ_SUPPORT_H_
