// Conversions between PostgreSQL's text format and rowgate's values, and the
// page token codec: pure functions, no database.
#include "storage/value.h"

#include <gtest/gtest.h>

#include "storage/page_token.h"

namespace rowgate::storage {
namespace {

TEST(ValueTest, ParsesTimestampsExactToTheMicrosecond) {
  const Value v =
      ParseText(ColumnType::kTimestamp, "2023-10-17 10:47:54.174001");
  ASSERT_TRUE(std::holds_alternative<Timestamp>(v));
  EXPECT_EQ(std::get<Timestamp>(v).micros, 1697539674174001);
  EXPECT_EQ(FormatTimestamp(std::get<Timestamp>(v)),
            "2023-10-17 10:47:54.174001");
}

TEST(ValueTest, ParsesTimestamptzWithOffsets) {
  EXPECT_EQ(std::get<Timestamp>(
                ParseText(ColumnType::kTimestampTz, "2023-10-17 12:47:54.5+02"))
                .micros,
            1697539674500000);
  EXPECT_EQ(std::get<Timestamp>(
                ParseText(ColumnType::kTimestampTz, "1969-12-31 23:59:59+00"))
                .micros,
            -1000000);
}

TEST(ValueTest, KeepsUninterpretableTimestampsAsText) {
  EXPECT_EQ(
      std::get<std::string>(ParseText(ColumnType::kTimestamp, "infinity")),
      "infinity");
}

TEST(ValueTest, ParsesIntegersBoolsBytesAndFloats) {
  EXPECT_EQ(
      std::get<int64_t>(ParseText(ColumnType::kInt64, "9007199254740993")),
      9007199254740993);  // not representable as a double
  EXPECT_EQ(std::get<bool>(ParseText(ColumnType::kBool, "t")), true);
  EXPECT_EQ(std::get<Bytes>(ParseText(ColumnType::kBytes, "\\x00ff41")).data,
            std::string("\0\xff"
                        "A",
                        3));
  EXPECT_TRUE(std::isinf(
      std::get<double>(ParseText(ColumnType::kFloat64, "-Infinity"))));
  EXPECT_EQ(std::get<std::string>(ParseText(ColumnType::kNumeric, "12.50")),
            "12.50");
}

TEST(ValueTest, ParameterOfTheWrongKindNamesColumnAndKinds) {
  auto p = ToParameter("age", ColumnType::kInt32, Value(std::string("ten")));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("\"age\""), absl::string_view::npos);
  EXPECT_NE(p.status().message().find("int64_value"), absl::string_view::npos);
  EXPECT_NE(p.status().message().find("string_value"), absl::string_view::npos);
}

TEST(ValueTest, IntegerParametersAreRangeChecked) {
  EXPECT_FALSE(
      ToParameter("n", ColumnType::kInt16, Value(int64_t{40000})).ok());
  EXPECT_EQ(**ToParameter("n", ColumnType::kInt16, Value(int64_t{-32768})),
            "-32768");
}

// A NUL byte would cut a C-string parameter short (a different key, a
// truncated value): refused instead.
TEST(ValueTest, TextWithNulBytesIsRefused) {
  auto p =
      ToParameter("name", ColumnType::kText, Value(std::string("ab\0c", 4)));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(
      CanonicalKey("code", ColumnType::kText, Value(std::string("k\0", 2)))
          .ok());
  // Bytes are hex-encoded: NUL is fine there.
  EXPECT_TRUE(ToParameter("blob", ColumnType::kBytes,
                          Value(Bytes{std::string("\0", 1)}))
                  .ok());
}

TEST(ValueTest, NullParameterIsSqlNull) {
  auto p = ToParameter("n", ColumnType::kText, Value(std::monostate()));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
}

TEST(ValueTest, CanonicalKeysMatchStoredKeyText) {
  EXPECT_EQ(*CanonicalKey("id", ColumnType::kInt64, Value(int64_t{42})), "42");
  EXPECT_EQ(KeyText(Value(int64_t{42})), "42");
  EXPECT_EQ(
      *CanonicalKey("u", ColumnType::kUuid,
                    Value(std::string("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"))),
      "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_FALSE(
      CanonicalKey("u", ColumnType::kUuid, Value(std::string("nope"))).ok());
  EXPECT_FALSE(
      CanonicalKey("id", ColumnType::kInt64, Value(std::monostate())).ok());
  EXPECT_FALSE(
      CanonicalKey("d", ColumnType::kDate, Value(std::string("2020-01-01")))
          .ok());
}

TEST(ValueTest, ArrayLiteralQuotesAndEscapesEveryElement) {
  EXPECT_EQ(ArrayLiteral({"a", "b,c", "d\"e", "f\\g", "NULL", ""}),
            "{\"a\",\"b,c\",\"d\\\"e\",\"f\\\\g\",\"NULL\",\"\"}");
}

TEST(PageTokenTest, RoundTripsEveryValueKind) {
  PageCursor cursor;
  cursor.query_fingerprint = Fingerprint("users|id+");
  cursor.last_sort_values = {Value(std::monostate()),
                             Value(int64_t{-5}),
                             Value(2.5),
                             Value(std::string("x\0y", 3)),
                             Value(true),
                             Value(Bytes{"\x01\x02"}),
                             Value(Timestamp{1697539674174001})};
  auto decoded = DecodePageToken(EncodePageToken(cursor));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->query_fingerprint, cursor.query_fingerprint);
  EXPECT_EQ(decoded->last_sort_values, cursor.last_sort_values);
}

TEST(PageTokenTest, RejectsMalformedTokens) {
  for (const char* token : {"", "not base64!", "AAAA", "UkcxAAAAAAAAAAAB"}) {
    auto decoded = DecodePageToken(token);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << token;
  }
  // A valid token with a byte cut off.
  PageCursor cursor{1, {Value(int64_t{7})}};
  std::string token = EncodePageToken(cursor);
  token.pop_back();
  EXPECT_FALSE(DecodePageToken(token).ok());
}

}  // namespace
}  // namespace rowgate::storage
