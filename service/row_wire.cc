#include "service/row_wire.h"

#include <cstring>
#include <variant>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/wire_format_lite.h"

namespace rowgate::service {
namespace {

using google::protobuf::internal::WireFormatLite;

// Every tag written here fits one byte (field numbers below 16).
constexpr char Tag(int field, WireFormatLite::WireType type) {
  return static_cast<char>(WireFormatLite::MakeTag(field, type));
}
constexpr WireFormatLite::WireType kVarint = WireFormatLite::WIRETYPE_VARINT;
constexpr WireFormatLite::WireType kFixed64 = WireFormatLite::WIRETYPE_FIXED64;
constexpr WireFormatLite::WireType kLength =
    WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
static_assert(v1::Value::kTimestampValueFieldNumber < 16 &&
                  v1::KeyResult::kValueRowsFieldNumber < 16,
              "a tag of more than one byte");

using google::protobuf::io::CodedOutputStream;

size_t VarintSize(uint64_t v) { return CodedOutputStream::VarintSize64(v); }

void PutVarint(uint64_t v, std::string* out) {
  uint8_t buffer[10];
  const uint8_t* end = CodedOutputStream::WriteVarint64ToArray(v, buffer);
  out->append(reinterpret_cast<const char*>(buffer), end - buffer);
}

// A length-delimited field's tag, length and bytes.
size_t LengthFieldSize(size_t length) {
  return 1 + VarintSize(length) + length;
}

void PutLengthField(char tag, const std::string& bytes, std::string* out) {
  out->push_back(tag);
  PutVarint(bytes.size(), out);
  out->append(bytes);
}

// The serialized google.protobuf.Timestamp: proto3 leaves out zero fields.
size_t TimestampBodySize(const TimestampParts& t) {
  size_t n = 0;
  if (t.seconds != 0) n += 1 + VarintSize(static_cast<uint64_t>(t.seconds));
  if (t.nanos != 0) n += 1 + VarintSize(static_cast<uint64_t>(t.nanos));
  return n;
}

// The bytes of a serialized v1::Value holding `value`. A oneof member is
// written even when it holds its type's default.
size_t ValueWireSize(const storage::Value& value) {
  switch (value.index()) {
    case 0:  // NULL_VALUE is 0
      return 2;
    case 1:
      return 1 + VarintSize(static_cast<uint64_t>(std::get<int64_t>(value)));
    case 2:
      return 1 + 8;
    case 3:
      return LengthFieldSize(std::get<std::string>(value).size());
    case 4:
      return 2;
    case 5:
      return LengthFieldSize(std::get<storage::Bytes>(value).data.size());
    case 6:
      return LengthFieldSize(TimestampBodySize(
          SplitMicros(std::get<storage::Timestamp>(value).micros)));
  }
  return 0;
}

}  // namespace

TimestampParts SplitMicros(int64_t micros) {
  int64_t seconds = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --seconds;
  }
  return {seconds, static_cast<int32_t>(rem * 1000)};
}

void AppendValueWire(const storage::Value& value, std::string* out) {
  switch (value.index()) {
    case 0:
      out->push_back(Tag(v1::Value::kNullValueFieldNumber, kVarint));
      out->push_back(static_cast<char>(google::protobuf::NULL_VALUE));
      break;
    case 1:
      out->push_back(Tag(v1::Value::kInt64ValueFieldNumber, kVarint));
      PutVarint(static_cast<uint64_t>(std::get<int64_t>(value)), out);
      break;
    case 2: {
      out->push_back(Tag(v1::Value::kDoubleValueFieldNumber, kFixed64));
      uint64_t bits;
      const double d = std::get<double>(value);
      std::memcpy(&bits, &d, sizeof bits);
      char little_endian[8];
      for (int i = 0; i < 8; ++i) {
        little_endian[i] = static_cast<char>(bits >> (8 * i));
      }
      out->append(little_endian, 8);
      break;
    }
    case 3:
      PutLengthField(Tag(v1::Value::kStringValueFieldNumber, kLength),
                     std::get<std::string>(value), out);
      break;
    case 4:
      out->push_back(Tag(v1::Value::kBoolValueFieldNumber, kVarint));
      out->push_back(std::get<bool>(value) ? 1 : 0);
      break;
    case 5:
      PutLengthField(Tag(v1::Value::kBytesValueFieldNumber, kLength),
                     std::get<storage::Bytes>(value).data, out);
      break;
    case 6: {
      const TimestampParts t =
          SplitMicros(std::get<storage::Timestamp>(value).micros);
      out->push_back(Tag(v1::Value::kTimestampValueFieldNumber, kLength));
      PutVarint(TimestampBodySize(t), out);
      if (t.seconds != 0) {
        out->push_back(
            Tag(google::protobuf::Timestamp::kSecondsFieldNumber, kVarint));
        PutVarint(static_cast<uint64_t>(t.seconds), out);
      }
      if (t.nanos != 0) {
        out->push_back(
            Tag(google::protobuf::Timestamp::kNanosFieldNumber, kVarint));
        PutVarint(static_cast<uint64_t>(t.nanos), out);
      }
      break;
    }
  }
}

void AppendRowWire(const storage::Entity& entity, const storage::Row& row,
                   const std::vector<int>& columns, std::string* out) {
  // Each column is one entry of the `fields` map: a message of the key
  // (field 1) and the value (field 2), both always written.
  constexpr char kEntryTag = Tag(v1::Row::kFieldsFieldNumber, kLength);
  constexpr char kKeyTag = Tag(1, kLength);
  constexpr char kValueTag = Tag(2, kLength);
  size_t total = 0;
  for (int c : columns) {
    const size_t entry = LengthFieldSize(entity.columns[c].name.size()) +
                         LengthFieldSize(ValueWireSize(row[c]));
    total += LengthFieldSize(entry);
  }
  out->reserve(out->size() + total);
  for (int c : columns) {
    const std::string& name = entity.columns[c].name;
    const size_t value_size = ValueWireSize(row[c]);
    out->push_back(kEntryTag);
    PutVarint(LengthFieldSize(name.size()) + LengthFieldSize(value_size), out);
    PutLengthField(kKeyTag, name, out);
    out->push_back(kValueTag);
    PutVarint(value_size, out);
    AppendValueWire(row[c], out);
  }
}

void AppendValueRowWire(const storage::Row& row,
                        const std::vector<int>& columns, std::string* out) {
  constexpr char kValuesTag = Tag(v1::ValueRow::kValuesFieldNumber, kLength);
  size_t total = 0;
  for (int c : columns) total += LengthFieldSize(ValueWireSize(row[c]));
  out->reserve(out->size() + total);
  for (int c : columns) {
    out->push_back(kValuesTag);
    PutVarint(ValueWireSize(row[c]), out);
    AppendValueWire(row[c], out);
  }
}

std::string* AddRowWire(v1::KeyResult* out) {
  return out->GetReflection()->MutableUnknownFields(out)->AddLengthDelimited(
      v1::KeyResult::kRowsFieldNumber);
}

std::string* AddValueRowWire(v1::KeyResult* out) {
  return out->GetReflection()->MutableUnknownFields(out)->AddLengthDelimited(
      v1::KeyResult::kValueRowsFieldNumber);
}

}  // namespace rowgate::service
