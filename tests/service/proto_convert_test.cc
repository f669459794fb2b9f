// Translation of wire values: every value a client can send is either
// converted exactly or refused with INVALID_ARGUMENT naming the column.
#include "service/proto_convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "google/protobuf/util/message_differencer.h"
#include "service/row_wire.h"

namespace rowgate::service {
namespace {

v1::Value TimestampValue(int64_t seconds, int32_t nanos) {
  v1::Value v;
  v.mutable_timestamp_value()->set_seconds(seconds);
  v.mutable_timestamp_value()->set_nanos(nanos);
  return v;
}

// INT64_MAX seconds used to wrap to 1969; huge nanos overflowed.
TEST(ProtoConvertTest, TimestampsOutsideProtobufsRangeAreRefused) {
  for (const v1::Value& v :
       {TimestampValue(std::numeric_limits<int64_t>::max(), 0),
        TimestampValue(std::numeric_limits<int64_t>::min(), 0),
        TimestampValue(253402300800, 0), TimestampValue(-62135596801, 0),
        TimestampValue(0, std::numeric_limits<int32_t>::max()),
        TimestampValue(0, 1000000000), TimestampValue(0, -1)}) {
    absl::StatusOr<storage::Value> converted = ValueFromProto(v, "at");
    EXPECT_EQ(converted.status().code(), absl::StatusCode::kInvalidArgument)
        << v.ShortDebugString();
    EXPECT_NE(converted.status().message().find("\"at\""),
              absl::string_view::npos)
        << converted.status();
  }
}

TEST(ProtoConvertTest, TimestampsAtTheEdgesOfTheRangeConvertExactly) {
  absl::StatusOr<storage::Value> last =
      ValueFromProto(TimestampValue(253402300799, 999999000), "at");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(std::get<storage::Timestamp>(*last).micros,
            253402300799LL * 1000000 + 999999);
  EXPECT_EQ(storage::FormatTimestamp(std::get<storage::Timestamp>(*last)),
            "9999-12-31 23:59:59.999999");
  absl::StatusOr<storage::Value> first =
      ValueFromProto(TimestampValue(-62135596800, 0), "at");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(storage::FormatTimestamp(std::get<storage::Timestamp>(*first)),
            "0001-01-01 00:00:00.000000");
}

TEST(ProtoConvertTest, NonFiniteDoublesAreRefusedWhereTheyCannotBeStored) {
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  using storage::ColumnType;
  for (double d : {nan, inf, -inf}) {
    // Integer columns take int64 only.
    EXPECT_FALSE(storage::ToParameter("n", ColumnType::kInt32, d).ok());
    EXPECT_FALSE(storage::ToParameter("n", ColumnType::kInt64, d).ok());
    // numeric would get "nan"/"inf".
    auto numeric = storage::ToParameter("amount", ColumnType::kNumeric, d);
    EXPECT_EQ(numeric.status().code(), absl::StatusCode::kInvalidArgument);
    // float8 stores them as PostgreSQL spells them.
    EXPECT_TRUE(storage::ToParameter("x", ColumnType::kFloat64, d).ok());
  }
  auto real = storage::ToParameter("ratio", ColumnType::kFloat32, 1e300);
  EXPECT_EQ(real.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(real.status().message().find("\"ratio\""), absl::string_view::npos);
  EXPECT_FALSE(
      storage::ToParameter("n", ColumnType::kInt32, int64_t{2147483648}).ok());
  EXPECT_FALSE(
      storage::ToParameter("n", ColumnType::kInt32, int64_t{-2147483649}).ok());
  EXPECT_TRUE(
      storage::ToParameter("n", ColumnType::kInt32, int64_t{-2147483648}).ok());
}

TEST(ProtoConvertTest, AbbreviateBoundsLongTextOnACharacterBoundary) {
  EXPECT_EQ(storage::Abbreviate("short"), "short");
  const std::string long_name(100000, 'x');
  const std::string shown = storage::Abbreviate(long_name);
  EXPECT_LT(shown.size(), 100u);
  EXPECT_NE(shown.find("(100000 bytes)"), std::string::npos);
  // 63 ASCII bytes then a two-byte character: cut before it, not inside.
  const std::string mixed = std::string(63, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(storage::Abbreviate(mixed).substr(0, 64),
            std::string(63, 'a') + "\xe2");
}

// A row the row cache answers from its encoding reads, once parsed, as the
// same KeyResult as one built from the row (every kind of value, null too),
// and as the only row even when serialized inside a larger answer.
TEST(ProtoConvertTest, EncodedRowAnswersLikeTheRowItself) {
  storage::Entity entity;
  const char* names[] = {"id", "name", "score", "active", "blob", "at", "gone"};
  for (const char* name : names) {
    storage::Column column;
    column.name = name;
    entity.columns.push_back(column);
  }
  const storage::Row row = {int64_t{7},
                            std::string("Ann \xc5\xbd"),
                            2.5,
                            true,
                            storage::Bytes{std::string("\0\1", 2)},
                            storage::Timestamp{1700000000123456},
                            std::monostate{}};
  v1::BatchGetResponse built, encoded;
  for (v1::BatchGetResponse* response : {&built, &encoded}) {
    v1::KeyResult* result = response->add_results();
    result->mutable_key()->set_int64_value(7);
    result->set_found(true);
    if (response == &built) {
      RowToProto(entity, row, AllColumns(entity), result->add_rows());
    } else {
      AddRowWire(result)->assign(EncodeRowWithAllColumns(entity, row));
    }
    response->add_results()->set_found(false);
  }
  v1::BatchGetResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(encoded.SerializeAsString()));
  ASSERT_EQ(parsed.results_size(), 2);
  ASSERT_EQ(parsed.results(0).rows_size(), 1);
  EXPECT_EQ(parsed.results(0).rows(0).fields().size(), 7u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, built))
      << "encoded: " << parsed.ShortDebugString()
      << "\nbuilt:   " << built.ShortDebugString();
}

}  // namespace
}  // namespace rowgate::service
