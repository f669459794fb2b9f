// Value conversions that tests/fuzz/fuzz_value found going wrong.
#include <gtest/gtest.h>

#include <string>

#include "storage/value.h"

namespace rowgate::storage {
namespace {

// A timestamp's year of 19 or more digits overflowed int64 while it was
// read (undefined behaviour; in practice it wrapped, and 2^64 + 1 read as
// the year 1). Such text is kept as text, as any timestamp ParseText
// cannot represent.
TEST(ValueRegressionsTest, TimestampWithAHugeYearIsKeptAsText) {
  for (const std::string text :
       {"18446744073709551617-01-01 00:00:00", "9999999-01-01 00:00:00",
        "80000000000000000000-12-31 23:59:59.999999+14"}) {
    for (ColumnType type : {ColumnType::kTimestamp, ColumnType::kTimestampTz}) {
      const Value v = ParseText(type, text);
      ASSERT_TRUE(std::holds_alternative<std::string>(v)) << text;
      EXPECT_EQ(std::get<std::string>(v), text);
    }
  }
  // Six digits still parse.
  EXPECT_TRUE(std::holds_alternative<Timestamp>(
      ParseText(ColumnType::kTimestamp, "100000-01-01 00:00:00")));
}

}  // namespace
}  // namespace rowgate::storage
