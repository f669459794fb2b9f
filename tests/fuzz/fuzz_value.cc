// Fuzzes value conversion: storage/value.h (ToParameter, ParseText,
// CanonicalKey, KeyText over every ColumnType) and service/proto_convert.h
// (ValueFromProto, RowFromProto from fuzzed protobuf bytes).
//
// Invariants: nothing crashes or trips a sanitizer; every error is
// INVALID_ARGUMENT with a bounded message; a parameter never holds a NUL
// byte (libpq would cut it short); integer and text keys round-trip through
// their parameter text (the text PostgreSQL echoes back for them); a proto
// Value survives ValueFromProto -> ValueToProto; only an out-of-range
// timestamp, a list_value or a reference is refused as a column's value.
#include <google/protobuf/stubs/logging.h>

#include <cstring>
#include <string>

#include "fuzz_support.h"
#include "rowgate/v1/rowgate.pb.h"
#include "service/proto_convert.h"

namespace rowgate::fuzz {
namespace {

void CheckValueError(const absl::Status& status) {
  CheckError(status);
  Check(status.code() == absl::StatusCode::kInvalidArgument,
        absl::StrCat("not INVALID_ARGUMENT: ", status.ToString()));
}

void FuzzStorageValue(FuzzedDataProvider& in) {
  const storage::ColumnType type = in.PickValueInArray(kAllTypes);
  const std::string column = in.ConsumeRandomLengthString(16);
  const storage::Value value = ConsumeValue(in);

  absl::StatusOr<std::optional<std::string>> param =
      storage::ToParameter(column, type, value);
  if (!param.ok()) {
    CheckValueError(param.status());
  } else if (param->has_value()) {
    Check((*param)->find('\0') == std::string::npos, "NUL in a parameter");
    // Parsing our own parameter text back must not crash either.
    storage::KeyText(storage::ParseText(type, **param));
  } else {
    Check(std::holds_alternative<std::monostate>(value),
          "NULL parameter for a non-null value");
  }

  absl::StatusOr<std::string> key = storage::CanonicalKey(column, type, value);
  if (!key.ok()) {
    CheckValueError(key.status());
  } else {
    Check(storage::IsKeyType(type), "key of a non-key type");
    if (type != storage::ColumnType::kUuid) {
      // Integer and text keys: PostgreSQL echoes the parameter text, which
      // ParseText/KeyText must map back to the same canonical key.
      Check(param.ok() && param->has_value() && **param == *key,
            "canonical key differs from the parameter");
      Check(storage::KeyText(storage::ParseText(type, *key)) == *key,
            absl::StrCat("key does not round-trip: ", *key));
    } else {
      Check(storage::KeyText(storage::ParseText(type, *key)) == *key,
            "uuid key is not canonical");
      Check(storage::CanonicalKey(column, type, *key).value_or("") == *key,
            "canonical uuid is not a fixed point");
    }
  }

  // PostgreSQL's text output of any type, as arbitrary bytes.
  const std::string text = in.ConsumeRandomLengthString(64);
  const storage::Value parsed = storage::ParseText(type, text);
  storage::KeyText(parsed);
  storage::ValueKindName(parsed);
  if (std::holds_alternative<storage::Timestamp>(parsed)) {
    storage::FormatTimestamp(std::get<storage::Timestamp>(parsed));
  }
  if (std::holds_alternative<storage::Timestamp>(value)) {
    storage::FormatTimestamp(std::get<storage::Timestamp>(value));
  }
}

void FuzzProtoValue(const std::string& bytes) {
  v1::Value proto;
  if (!proto.ParseFromString(bytes)) return;
  proto.DiscardUnknownFields();  // not part of the value
  absl::StatusOr<storage::Value> converted =
      service::ValueFromProto(proto, "c");
  if (!converted.ok()) {
    CheckValueError(converted.status());
    // Refused: a timestamp outside google.protobuf.Timestamp's range, and
    // the two kinds that are never a column's value on their own (a
    // list_value is a composite key, a reference only Transact resolves).
    const auto& ts = proto.timestamp_value();
    const bool out_of_range_timestamp =
        proto.kind_case() == v1::Value::kTimestampValue &&
        (ts.nanos() < 0 || ts.nanos() > 999999999 ||
         ts.seconds() < -62135596800 || ts.seconds() > 253402300799);
    const bool not_a_column_value =
        proto.kind_case() == v1::Value::kListValue ||
        proto.kind_case() == v1::Value::kReference;
    Check(out_of_range_timestamp || not_a_column_value,
          "a valid value is refused: " + converted.status().ToString());
    return;
  }
  const storage::Value& value = *converted;
  v1::Value back;
  service::ValueToProto(value, &back);
  switch (proto.kind_case()) {
    case v1::Value::kTimestampValue: {
      // Microseconds survive; valid nanos round to the nearest microsecond.
      const auto& ts = proto.timestamp_value();
      if (ts.nanos() >= 0 && ts.nanos() < 999999500 &&
          ts.seconds() >= -62135596800 && ts.seconds() <= 253402300799) {
        Check(back.timestamp_value().seconds() == ts.seconds(),
              "timestamp seconds changed");
        Check(
            back.timestamp_value().nanos() == (ts.nanos() + 500) / 1000 * 1000,
            "timestamp nanos not rounded to the microsecond");
      }
      break;
    }
    case v1::Value::KIND_NOT_SET:
    case v1::Value::kNullValue:
      Check(back.kind_case() == v1::Value::kNullValue, "null became a value");
      break;
    case v1::Value::kDoubleValue: {
      const double a = proto.double_value(), b = back.double_value();
      Check(std::memcmp(&a, &b, sizeof(a)) == 0, "double changed");
      break;
    }
    default:
      Check(back.SerializeAsString() == proto.SerializeAsString(),
            "value changed in ValueFromProto -> ValueToProto");
  }
  // As a parameter of every column type.
  for (storage::ColumnType type : kAllTypes) {
    absl::StatusOr<std::optional<std::string>> param =
        storage::ToParameter("c", type, value);
    if (!param.ok()) CheckValueError(param.status());
  }
}

void FuzzProtoRow(const std::string& bytes) {
  static const auto* catalog = new auto(AllTypesCatalog());
  v1::Row row;
  if (!row.ParseFromString(bytes)) return;
  const storage::Entity& entity = (*catalog)->entities()[0];
  absl::StatusOr<storage::ColumnValues> values =
      service::RowFromProto(entity, row);
  if (!values.ok()) {
    CheckValueError(values.status());
    return;
  }
  Check(values->size() == static_cast<size_t>(row.fields_size()),
        "RowFromProto lost fields");
  for (const auto& [index, value] : *values) {
    Check(index >= 0 && index < static_cast<int>(entity.columns.size()),
          "column index out of range");
    const storage::Column& c = entity.columns[index];
    absl::StatusOr<std::optional<std::string>> param =
        storage::ToParameter(c.name, c.type, value);
    if (!param.ok()) CheckValueError(param.status());
  }
}

}  // namespace
}  // namespace rowgate::fuzz

// Fuzzed strings are often invalid UTF-8, which protobuf refuses (as the
// server does) and logs; the log lines would drown the fuzzer's output.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0:
      rowgate::fuzz::FuzzStorageValue(in);
      break;
    case 1:
      rowgate::fuzz::FuzzProtoValue(in.ConsumeRemainingBytesAsString());
      break;
    default:
      rowgate::fuzz::FuzzProtoRow(in.ConsumeRemainingBytesAsString());
  }
  return 0;
}
