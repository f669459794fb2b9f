// Rows written straight into the wire format (service/row_wire.h) are the
// bytes protobuf writes for the same messages.
#include "service/row_wire.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "service/proto_convert.h"

namespace rowgate::service {
namespace {

using google::protobuf::util::MessageDifferencer;

// Every kind of value, with the edges of each encoding: varints of one and
// of ten bytes, lengths of one, two and three bytes, zero and negative
// timestamps (proto3 leaves zero fields out).
std::vector<storage::Value> EveryKindOfValue() {
  std::vector<storage::Value> values = {
      std::monostate{},
      int64_t{0},
      int64_t{1},
      int64_t{127},
      int64_t{128},
      int64_t{-1},
      std::numeric_limits<int64_t>::min(),
      std::numeric_limits<int64_t>::max(),
      0.0,
      -0.0,
      2.5,
      -1e300,
      std::numeric_limits<double>::infinity(),
      std::nan(""),
      std::string(),
      std::string("a"),
      std::string("\xc5\xbelu\xc5\xa5ou\xc4\x8dk\xc3\xbd k\xc5\xaf\xc5\x88"),
      std::string(200, 'x'),
      std::string(20000, 'y'),
      true,
      false,
      storage::Bytes{},
      storage::Bytes{std::string("\0\1\2\xff", 4)},
      storage::Bytes{std::string(300, '\0')},
  };
  // Timestamps as their own vector, then appended: GCC 12 warns of a
  // "maybe uninitialized" string when a vector of variants grows by one.
  std::vector<storage::Value> timestamps;
  for (int64_t micros : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{1000000},
                         int64_t{-1000001}, int64_t{1767323045123456},
                         int64_t{-62135596800} * 1000000,
                         int64_t{253402300799} * 1000000 + 999999}) {
    timestamps.emplace_back(storage::Timestamp{micros});
  }
  values.insert(values.end(), timestamps.begin(), timestamps.end());
  return values;
}

std::string Describe(const storage::Value& value) {
  v1::Value proto;
  ValueToProto(value, &proto);
  return proto.ShortDebugString().substr(0, 80);
}

TEST(RowWireTest, ValuesAreWhatProtobufWrites) {
  for (const storage::Value& value : EveryKindOfValue()) {
    v1::Value built;
    ValueToProto(value, &built);
    std::string wire;
    AppendValueWire(value, &wire);
    EXPECT_EQ(wire, built.SerializeAsString()) << Describe(value);
  }
}

storage::Entity EntityWithColumns(size_t n) {
  storage::Entity entity;
  for (size_t i = 0; i < n; ++i) {
    storage::Column column;
    // Names of one and of two length bytes.
    column.name = i % 2 == 0 ? "c" + std::to_string(i) : std::string(130, 'n');
    column.name += std::to_string(i);
    entity.columns.push_back(column);
  }
  return entity;
}

TEST(RowWireTest, AOneColumnRowIsWhatProtobufWrites) {
  const storage::Entity entity = EntityWithColumns(2);
  for (int column : {0, 1}) {
    for (const storage::Value& value : EveryKindOfValue()) {
      storage::Row row(2);
      row[column] = value;
      v1::Row built;
      RowToProto(entity, row, {column}, &built);
      std::string wire;
      AppendRowWire(entity, row, {column}, &wire);
      // One map entry: protobuf's bytes are fixed.
      EXPECT_EQ(wire, built.SerializeAsString()) << Describe(value);
    }
  }
}

TEST(RowWireTest, RowsParseAsTheRowsProtobufBuilds) {
  const std::vector<storage::Value> values = EveryKindOfValue();
  const storage::Entity entity = EntityWithColumns(values.size());
  storage::Row row(values.begin(), values.end());
  std::vector<int> all = AllColumns(entity);
  // A projection in another order, with a column twice (ResolveColumns
  // allows that; the map keeps one entry, the last).
  std::vector<int> some = {5, 3, 16, 3};
  for (const std::vector<int>* columns : {&all, &some}) {
    v1::Row built;
    RowToProto(entity, row, *columns, &built);
    std::string wire;
    AppendRowWire(entity, row, *columns, &wire);
    v1::Row parsed;
    ASSERT_TRUE(parsed.ParseFromString(wire));
    EXPECT_EQ(parsed.fields().size(), built.fields().size());
    // NaN is not equal to itself: compare it by its bytes.
    for (const auto& [name, value] : built.fields()) {
      ASSERT_EQ(parsed.fields().count(name), 1u) << name;
      EXPECT_EQ(parsed.fields().at(name).SerializeAsString(),
                value.SerializeAsString())
          << name;
    }
    if (columns == &all) {
      EXPECT_EQ(wire.size(), built.ByteSizeLong());
    }
  }
}

TEST(RowWireTest, ValueRowsAreWhatProtobufWrites) {
  const std::vector<storage::Value> values = EveryKindOfValue();
  storage::Row row(values.begin(), values.end());
  std::vector<int> columns;
  for (size_t i = 0; i < row.size(); ++i) columns.push_back(i);
  columns.push_back(3);
  v1::ValueRow built;
  RowToValueList(row, columns, &built);
  std::string wire;
  AppendValueRowWire(row, columns, &wire);
  EXPECT_EQ(wire, built.SerializeAsString());
}

// As an answer carries them: a KeyResult whose rows were added written is
// serialized as one whose rows were built, byte for byte.
TEST(RowWireTest, AnswersWithWrittenRowsAreTheAnswersWithBuiltRows) {
  const storage::Entity entity = EntityWithColumns(1);
  const storage::Row first = {std::string("Ann")};
  const storage::Row second = {int64_t{-5}};
  for (bool as_list : {false, true}) {
    v1::BatchGetResponse built, written;
    for (v1::BatchGetResponse* response : {&built, &written}) {
      v1::KeyResult* result = response->add_results();
      result->mutable_key()->set_int64_value(7);
      result->set_found(true);
      for (const storage::Row* row : {&first, &second}) {
        if (response == &built) {
          if (as_list) {
            RowToValueList(*row, {0}, result->add_value_rows());
          } else {
            RowToProto(entity, *row, {0}, result->add_rows());
          }
        } else if (as_list) {
          AppendValueRowWire(*row, {0}, AddValueRowWire(result));
        } else {
          AppendRowWire(entity, *row, {0}, AddRowWire(result));
        }
      }
      response->add_results()->set_found(false);
    }
    EXPECT_EQ(written.SerializeAsString(), built.SerializeAsString())
        << (as_list ? "as lists" : "as maps");
    v1::BatchGetResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(written.SerializeAsString()));
    EXPECT_TRUE(MessageDifferencer::Equals(parsed, built))
        << parsed.ShortDebugString();
  }
}

}  // namespace
}  // namespace rowgate::service
