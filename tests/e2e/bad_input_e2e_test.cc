// End-to-end: a hostile client against the real rowgate. Every malformed
// request of the table below gets its own clear status, with a message that
// names what was wrong and stays short; afterwards the servers are alive
// (health and a good BatchGet) and no table changed (checksums).
//
// Requests travel as raw bytes through grpc::GenericStub, so cases can be
// hand-encoded messages a typed client would refuse to build (invalid UTF-8
// in a string field, truncated or garbage bytes) and the server's own parse
// path is what answers them. Two servers: one on the demo schema, one on the
// schema bad_input, whose table has every column type the demo lacks.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/client_context.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::HasSubstr;

// Longest status message a case may get: a client's metadata limit is
// typically 8 KB, and a clear message needs far less.
constexpr size_t kMaxMessageBytes = 1024;

// ------------------------------------------------------- wire encoding

std::string Varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}
// A length-delimited field (string, bytes, message).
std::string LenField(int number, const std::string& bytes) {
  return Varint(static_cast<uint64_t>(number) << 3 | 2) + Varint(bytes.size()) +
         bytes;
}
// A varint field (int, bool, enum).
std::string VarintField(int number, uint64_t value) {
  return Varint(static_cast<uint64_t>(number) << 3) + Varint(value);
}

// ---------------------------------------------------------------- values

v1::Value Dbl(double d) {
  v1::Value v;
  v.set_double_value(d);
  return v;
}
v1::Value Bool(bool b) {
  v1::Value v;
  v.set_bool_value(b);
  return v;
}
v1::Value Bytes(std::string b) {
  v1::Value v;
  v.set_bytes_value(std::move(b));
  return v;
}
v1::Value Time(int64_t seconds, int32_t nanos = 0) {
  v1::Value v;
  v.mutable_timestamp_value()->set_seconds(seconds);
  v.mutable_timestamp_value()->set_nanos(nanos);
  return v;
}

// ---------------------------------------------------------------- requests

std::string BatchGet(const std::string& entity, std::vector<v1::Value> keys,
                     const std::string& key_column = "",
                     std::vector<std::string> columns = {}) {
  return BatchGetRequest(entity, std::move(keys), key_column,
                         std::move(columns))
      .SerializeAsString();
}
std::string Insert(const std::string& entity, std::vector<v1::Row> rows) {
  v1::InsertRequest r;
  r.set_entity(entity);
  for (v1::Row& row : rows) *r.add_rows() = std::move(row);
  return r.SerializeAsString();
}
std::string Update(const std::string& entity, v1::Row row) {
  v1::UpdateRequest r;
  r.set_entity(entity);
  *r.mutable_row() = std::move(row);
  return r.SerializeAsString();
}
std::string Delete(const std::string& entity, std::vector<v1::Value> keys,
                   const v1::Value* expected_version = nullptr) {
  v1::DeleteRequest r;
  r.set_entity(entity);
  for (v1::Value& key : keys) *r.add_keys() = std::move(key);
  if (expected_version != nullptr) {
    *r.mutable_expected_version() = *expected_version;
  }
  return r.SerializeAsString();
}
std::string Page(std::function<void(v1::PageRequest&)> fill) {
  v1::PageRequest r;
  r.set_entity("users");
  fill(r);
  return r.SerializeAsString();
}
std::string Describe(const std::string& entity) {
  v1::DescribeEntityRequest r;
  r.set_entity(entity);
  return r.SerializeAsString();
}
std::vector<v1::Value> ManyInts(int count) {
  std::vector<v1::Value> out;
  for (int i = 0; i < count; ++i) out.push_back(Int(i + 1));
  return out;
}
std::vector<v1::Row> ManyRows(int count, std::function<v1::Row(int)> make_row) {
  std::vector<v1::Row> out;
  for (int i = 0; i < count; ++i) out.push_back(make_row(i));
  return out;
}

// ------------------------------------------------------------ the cases

enum class Target { kDemo, kTyped };

struct Case {
  std::string name;
  Target target;
  std::string method;   // DataService method, e.g. "BatchGet"
  std::string request;  // the serialized request
  grpc::StatusCode code;
  std::string message;  // a substring the status message must contain
};

// Facts about the demo data the cases refer to.
struct Demo {
  int64_t user_id = 0;       // an existing user
  std::string user_version;  // its lastchange, as stored
  std::string users_token;   // a valid next_page_token of users
};

std::vector<Case> Cases(const Demo& demo) {
  using grpc::StatusCode;
  const StatusCode kInvalid = StatusCode::INVALID_ARGUMENT;
  const std::string huge(100000, 'x');
  const std::string name64(64, 'n');
  const std::string two_mib(2 << 20, 'v');
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  const int64_t int64_max = std::numeric_limits<int64_t>::max();
  const int64_t int64_min = std::numeric_limits<int64_t>::min();
  const v1::Value stale = Time(1000000000);  // 2001: never a stored version
  const v1::Value bad_nanos = Time(1700000000, -1);
  auto user = [&](std::initializer_list<std::pair<std::string, v1::Value>> c) {
    return MakeRow(c);
  };
  auto typed = [&](std::initializer_list<std::pair<std::string, v1::Value>> c) {
    return Insert("typed", {MakeRow(c)});
  };
  const std::string not_batch_get =
      "request is not a valid rowgate.v1.BatchGetRequest message";
  std::vector<Case> cases = {
      // ---- BatchGet: names
      {"BatchGetNoEntity", Target::kDemo, "BatchGet", BatchGet("", Ints({1})),
       kInvalid, "entity is required"},
      {"BatchGetUnknownEntity", Target::kDemo, "BatchGet",
       BatchGet("nope", Ints({1})), kInvalid, "unknown entity \"nope\""},
      {"BatchGetSqlEntity", Target::kDemo, "BatchGet",
       BatchGet("users; DROP TABLE users", Ints({1})), kInvalid,
       "unknown entity \"users; DROP TABLE users\""},
      {"BatchGetQuotedEntity", Target::kDemo, "BatchGet",
       BatchGet("\"users\"", Ints({1})), kInvalid, "unknown entity"},
      {"BatchGetBackslashEntity", Target::kDemo, "BatchGet",
       BatchGet("us\\ers'--", Ints({1})), kInvalid, "unknown entity"},
      {"BatchGetHugeEntity", Target::kDemo, "BatchGet",
       BatchGet(huge, Ints({1})), kInvalid,
       "is 100000 bytes; PostgreSQL identifiers are at most 63"},
      {"BatchGetEntity64Bytes", Target::kDemo, "BatchGet",
       BatchGet(name64, Ints({1})), kInvalid, "at most 63"},
      {"BatchGetUnknownKeyColumn", Target::kDemo, "BatchGet",
       BatchGet("users", Ints({1}), "nope"), kInvalid,
       "unknown column \"nope\" of entity users"},
      {"BatchGetSqlKeyColumn", Target::kDemo, "BatchGet",
       BatchGet("users", Ints({1}), "id; DROP TABLE users"), kInvalid,
       "unknown column"},
      {"BatchGetHugeKeyColumn", Target::kDemo, "BatchGet",
       BatchGet("users", Ints({1}), huge), kInvalid, "at most 63"},
      {"BatchGetUnknownProjection", Target::kDemo, "BatchGet",
       BatchGet("users", Ints({1}), "", {"id", "nope"}), kInvalid,
       "unknown column \"nope\""},
      {"BatchGetHugeProjection", Target::kDemo, "BatchGet",
       BatchGet("users", Ints({1}), "", {huge}), kInvalid, "at most 63"},
      {"BatchGetTimestampKeyColumn", Target::kDemo, "BatchGet",
       BatchGet("users", {Time(0)}, "lastchange"), kInvalid,
       "cannot be a lookup key"},
      // ---- BatchGet: keys
      {"BatchGetUnsetKey", Target::kDemo, "BatchGet",
       BatchGet("users", {v1::Value()}), kInvalid, "null or unset"},
      {"BatchGetNullKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Null()}), kInvalid, "null or unset"},
      {"BatchGetStringKeyForBigint", Target::kDemo, "BatchGet",
       BatchGet("users", {Str("1; DROP TABLE users")}), kInvalid,
       "takes int64_value, not string_value"},
      {"BatchGetNaNKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Dbl(nan)}), kInvalid, "not double_value"},
      {"BatchGetInfinityKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Dbl(-inf)}), kInvalid, "not double_value"},
      {"BatchGetBoolKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Bool(true)}), kInvalid, "not bool_value"},
      {"BatchGetBytesKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Bytes("\x01")}), kInvalid, "not bytes_value"},
      {"BatchGetTimestampKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Time(0)}), kInvalid, "not timestamp_value"},
      {"BatchGetOutOfRangeTimestampKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Time(int64_max)}), kInvalid, "out of range"},
      {"BatchGetTooManyKeys", Target::kDemo, "BatchGet",
       BatchGet("users", ManyInts(1001)), kInvalid,
       "at most 1000 are allowed per request (--max_keys_per_request)"},
      {"BatchGetNulInTextKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Str(std::string("a\0b", 3))}, "email"), kInvalid,
       "NUL byte"},
      {"BatchGetHugeTextKey", Target::kDemo, "BatchGet",
       BatchGet("users", {Str(two_mib)}, "email"), kInvalid,
       "--max_value_bytes"},
      {"BatchGetNoKeysIsAnEmptyAnswer", Target::kDemo, "BatchGet",
       BatchGet("users", {}), StatusCode::OK, ""},
      {"BatchGetSqlTextKeyIsJustNotFound", Target::kDemo, "BatchGet",
       BatchGet("users", {Str("' OR '1'='1"), Str("\\\"")}, "email"),
       StatusCode::OK, ""},
      // ---- BatchGet: bytes that are no message
      {"BatchGetInvalidUtf8Entity", Target::kDemo, "BatchGet",
       LenField(1, "\xff\xfeusers"), kInvalid, not_batch_get},
      {"BatchGetInvalidUtf8KeyColumn", Target::kDemo, "BatchGet",
       LenField(1, "users") + LenField(3, "\xc3\x28"), kInvalid, not_batch_get},
      {"BatchGetTruncated", Target::kDemo, "BatchGet",
       LenField(1, "users").substr(0, 4), kInvalid, not_batch_get},
      {"BatchGetGarbage", Target::kDemo, "BatchGet",
       std::string("\xff\xff\xff\xff\xff\xff", 6), kInvalid, not_batch_get},
      {"BatchGetTruncatedKey", Target::kDemo, "BatchGet",
       LenField(1, "users") + LenField(2, VarintField(2, 7)).substr(0, 3),
       kInvalid, not_batch_get},
      // ---- Insert
      {"InsertNoRows", Target::kDemo, "Insert", Insert("users", {}), kInvalid,
       "has no rows"},
      {"InsertUnknownEntity", Target::kDemo, "Insert",
       Insert("users_x", {user({{"name", Str("a")}})}), kInvalid,
       "unknown entity"},
      {"InsertUnknownColumn", Target::kDemo, "Insert",
       Insert("users", {user({{"nope", Str("a")}})}), kInvalid,
       "unknown column \"nope\""},
      {"InsertSqlColumn", Target::kDemo, "Insert",
       Insert("users", {user({{"name\" = 1; --", Str("a")}})}), kInvalid,
       "unknown column"},
      {"InsertHugeColumnName", Target::kDemo, "Insert",
       Insert("users", {user({{huge, Str("a")}})}), kInvalid, "at most 63"},
      {"InsertStringId", Target::kDemo, "Insert",
       Insert("users", {user({{"id", Str("1")}})}), kInvalid,
       "column \"id\" takes int64_value"},
      {"InsertInfiniteVersion", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Str("infinity")}})}), kInvalid,
       "\"lastchange\" of users is the version column and cannot be infinite"},
      {"InsertMinusInfiniteVersion", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Str("-Infinity")}})}), kInvalid,
       "cannot be infinite"},
      {"InsertInt64MaxSeconds", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Time(int64_max)}})}), kInvalid,
       "timestamp for column \"lastchange\" is out of range"},
      {"InsertInt64MinSeconds", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Time(int64_min)}})}), kInvalid,
       "out of range"},
      {"InsertYear10000", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Time(253402300800)}})}), kInvalid,
       "out of range"},
      {"InsertNegativeNanos", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", bad_nanos}})}), kInvalid,
       "nanos -1"},
      {"InsertHugeNanos", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Time(0, 2000000000)}})}), kInvalid,
       "nanos 2000000000"},
      {"InsertVersionNotADate", Target::kDemo, "Insert",
       Insert("users", {user({{"lastchange", Str("yesterday-ish")}})}),
       kInvalid, "invalid input syntax"},
      {"InsertIntegerOverflow", Target::kDemo, "Insert",
       Insert("groups", {user({{"entryYearId", Int(2147483648)}})}), kInvalid,
       "out of range for column \"entryYearId\""},
      {"InsertIntegerUnderflow", Target::kDemo, "Insert",
       Insert("groups", {user({{"entryYearId", Int(-2147483649)}})}), kInvalid,
       "out of range"},
      {"InsertDoubleIntoInteger", Target::kDemo, "Insert",
       Insert("groups", {user({{"entryYearId", Dbl(nan)}})}), kInvalid,
       "takes int64_value, not double_value"},
      {"InsertInfinityIntoBigint", Target::kDemo, "Insert",
       Insert("users", {user({{"externalId", Dbl(inf)}})}), kInvalid,
       "not double_value"},
      {"InsertNotNullViolation", Target::kDemo, "Insert",
       Insert("users_groups", {user({{"group_id", Null()}})}), kInvalid,
       "null value in column"},
      {"InsertForeignKeyViolation", Target::kDemo, "Insert",
       Insert("users_groups", {user({{"user_id", Int(999999999)},
                                     {"group_id", Int(999999998)}})}),
       StatusCode::FAILED_PRECONDITION, "foreign key"},
      {"InsertDuplicateKey", Target::kDemo, "Insert",
       Insert("users", {user({{"id", Int(demo.user_id)}})}),
       StatusCode::ALREADY_EXISTS, "duplicate key"},
      {"InsertTooManyRows", Target::kDemo, "Insert",
       Insert("users", ManyRows(1001,
                                [](int) {
                                  return MakeRow({{"name", Str("r")}});
                                })),
       kInvalid, "Insert has 1001 rows; at most 1000"},
      {"InsertHugeValue", Target::kDemo, "Insert",
       Insert("users", {user({{"name", Str(two_mib)}})}), kInvalid,
       "the value for column \"name\" is 2097152 bytes"},
      {"InsertNulInText", Target::kDemo, "Insert",
       Insert("users", {user({{"name", Str(std::string("a\0", 2))}})}),
       kInvalid, "NUL byte"},
      {"InsertInvalidUtf8Value", Target::kDemo, "Insert",
       LenField(1, "users") +
           LenField(2, LenField(1, LenField(1, "name") +
                                       LenField(2, LenField(4, "\xc3\x28")))),
       kInvalid, "request is not a valid rowgate.v1.InsertRequest message"},
      {"InsertInvalidUtf8ColumnName", Target::kDemo, "Insert",
       LenField(1, "users") +
           LenField(2, LenField(1, LenField(1, "na\xffme") +
                                       LenField(2, LenField(4, "a")))),
       kInvalid, "not a valid rowgate.v1.InsertRequest"},
      // ---- Update
      {"UpdateWithoutKey", Target::kDemo, "Update",
       Update("users", user({{"name", Str("a")}, {"lastchange", stale}})),
       kInvalid, "needs the primary key \"id\""},
      {"UpdateNullKey", Target::kDemo, "Update",
       Update(
           "users",
           user({{"id", Null()}, {"name", Str("a")}, {"lastchange", stale}})),
       kInvalid, "the primary key \"id\" is null or unset"},
      {"UpdateUnsetKey", Target::kDemo, "Update",
       Update("users", user({{"id", v1::Value()},
                             {"name", Str("a")},
                             {"lastchange", stale}})),
       kInvalid, "is null or unset"},
      {"UpdateWithoutVersion", Target::kDemo, "Update",
       Update("users", user({{"id", Int(demo.user_id)}, {"name", Str("a")}})),
       kInvalid, "needs the row's \"lastchange\""},
      {"UpdateStringKey", Target::kDemo, "Update",
       Update("users", user({{"id", Str("1 OR 1=1")},
                             {"name", Str("a")},
                             {"lastchange", stale}})),
       kInvalid, "takes int64_value"},
      {"UpdateMissingRow", Target::kDemo, "Update",
       Update("users", user({{"id", Int(999999999)},
                             {"name", Str("a")},
                             {"lastchange", stale}})),
       StatusCode::NOT_FOUND, "users with id 999999999 does not exist"},
      {"UpdateStaleVersion", Target::kDemo, "Update",
       Update("users", user({{"id", Int(demo.user_id)},
                             {"name", Str("hijack")},
                             {"lastchange", stale}})),
       StatusCode::ABORTED, "was changed since it was read"},
      {"UpdateOutOfRangeVersion", Target::kDemo, "Update",
       Update("users", user({{"id", Int(demo.user_id)},
                             {"name", Str("a")},
                             {"lastchange", bad_nanos}})),
       kInvalid, "nanos -1"},
      {"UpdateIntegerOverflow", Target::kDemo, "Update",
       Update("groups", user({{"id", Int(demo.user_id)},
                              {"entryYearId", Int(int64_max)},
                              {"lastchange", stale}})),
       kInvalid, "out of range"},
      {"UpdateGarbage", Target::kDemo, "Update", std::string("\x12\xff", 2),
       kInvalid, "request is not a valid rowgate.v1.UpdateRequest message"},
      // ---- Delete
      {"DeleteNullKey", Target::kDemo, "Delete", Delete("users", {Null()}),
       kInvalid, "null or unset"},
      {"DeleteUnsetKey", Target::kDemo, "Delete",
       Delete("users", {Int(999999999), v1::Value()}), kInvalid,
       "null or unset"},
      {"DeleteSqlKey", Target::kDemo, "Delete",
       Delete("users", {Str("1; DROP TABLE users")}), kInvalid,
       "takes int64_value"},
      {"DeleteVersionWithTwoKeys", Target::kDemo, "Delete",
       Delete("users", {Int(999999999), Int(999999998)}, &stale), kInvalid,
       "expected_version needs exactly one key"},
      {"DeleteStaleVersion", Target::kDemo, "Delete",
       Delete("users", {Int(demo.user_id)}, &stale), StatusCode::ABORTED,
       "was changed since it was read"},
      {"DeleteVersionOutOfRange", Target::kDemo, "Delete",
       Delete("users", {Int(demo.user_id)}, &bad_nanos), kInvalid, "nanos"},
      {"DeleteVersionOnEntityWithout", Target::kDemo, "Delete",
       Delete("users_groups", {CompositeKey({999999999, 1, 13})}, &stale),
       kInvalid, "has no version column"},
      {"DeleteTooManyKeys", Target::kDemo, "Delete",
       Delete("users", ManyInts(1001)), kInvalid, "at most 1000"},
      {"DeleteMissingKeyDeletesNothing", Target::kDemo, "Delete",
       Delete("users", {Int(999999999)}), StatusCode::OK, ""},
      // ---- Page
      {"PageNegativeSize", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { r.set_page_size(-1); }), kInvalid,
       "page_size must not be negative (got -1)"},
      {"PageNegativeOffset", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { r.set_offset(-5); }), kInvalid,
       "offset must not be negative (got -5)"},
      {"PageOffsetOverTheCap", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { r.set_offset(100001); }), kInvalid,
       "offset 100001 is over 100000 (--max_page_offset)"},
      {"PageOffsetAtTheCap", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { r.set_offset(100000); }), StatusCode::OK,
       ""},
      {"PageForgedToken", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { r.set_page_token("not-a-token"); }),
       kInvalid, "page_token"},
      {"PageBase64GarbageToken", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         r.set_page_token(absl::WebSafeBase64Escape("\x01\x02garbage\xff"));
       }),
       kInvalid, "page_token"},
      {"PageTruncatedToken", Target::kDemo, "Page",
       Page([&](v1::PageRequest& r) {
         r.set_page_token(
             demo.users_token.substr(0, demo.users_token.size() / 2));
       }),
       kInvalid, "page_token"},
      {"PageForeignToken", Target::kDemo, "Page", Page([&](v1::PageRequest& r) {
         r.set_entity("groups");
         r.set_page_token(demo.users_token);
       }),
       kInvalid, "issued for a different entity, filter or order"},
      {"PageTokenOfOtherOrder", Target::kDemo, "Page",
       Page([&](v1::PageRequest& r) {
         r.add_order_by()->set_column("name");
         r.set_page_token(demo.users_token);
       }),
       kInvalid, "issued for a different entity"},
      {"PageTokenWithOffset", Target::kDemo, "Page",
       Page([&](v1::PageRequest& r) {
         r.set_offset(1);
         r.set_page_token(demo.users_token);
       }),
       kInvalid, "offset cannot be combined with page_token"},
      {"PageFilterWithoutOperator", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { r.add_filters()->set_column("id"); }),
       kInvalid, "has no operator"},
      {"PageFilterUnknownOperator", Target::kDemo, "Page",
       LenField(1, "users") +
           LenField(2, LenField(1, "id") + VarintField(2, 99)),
       kInvalid, "has no operator"},
      {"PageFilterUnknownColumn", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         *r.add_filters() = MakeFilter("1=1; --", v1::Filter::EQUAL, Int(1));
       }),
       kInvalid, "unknown column \"1=1; --\""},
      {"PageFilterUnsetValue", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         *r.add_filters() = MakeFilter("id", v1::Filter::LESS);
       }),
       kInvalid, "needs one non-null value"},
      {"PageFilterWrongKind", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         *r.add_filters() = MakeFilter("id", v1::Filter::EQUAL, Str("1"));
       }),
       kInvalid, "takes int64_value"},
      {"PageFilterNotADate", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         *r.add_filters() =
             MakeFilter("lastchange", v1::Filter::LESS, Str("'; DROP --"));
       }),
       kInvalid, "invalid input syntax"},
      {"PageInWithNull", Target::kDemo, "Page", Page([](v1::PageRequest& r) {
         *r.add_filters() = InFilter("id", {Int(1), Null()});
       }),
       kInvalid, "holds a null; use IS_NULL"},
      {"PageTooManyInValues", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         *r.add_filters() = InFilter("id", ManyInts(1001));
       }),
       kInvalid, "has 1001 values; at most 1000 are allowed (--max_in_values)"},
      {"PageTooManyFilters", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         for (int i = 0; i < 65; ++i)
           *r.add_filters() = MakeFilter("id", v1::Filter::GREATER, Int(i));
       }),
       kInvalid, "Page has 65 filters; at most 64 are allowed"},
      {"Page70000Filters", Target::kDemo, "Page", Page([](v1::PageRequest& r) {
         for (int i = 0; i < 70000; ++i)
           *r.add_filters() = MakeFilter("id", v1::Filter::GREATER, Int(i));
       }),
       kInvalid, "--max_filters_per_page"},
      {"PageTooManyOrderBy", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         for (int i = 0; i < 33; ++i) r.add_order_by()->set_column("name");
       }),
       kInvalid, "33 order_by terms; at most 32"},
      {"PageOrderByUnknownColumn", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         r.add_order_by()->set_column("id DESC; DROP TABLE users");
       }),
       kInvalid, "unknown column"},
      {"PageHugeFilterValue", Target::kDemo, "Page",
       Page([&](v1::PageRequest& r) {
         *r.add_filters() = MakeFilter("name", v1::Filter::EQUAL, Str(two_mib));
       }),
       kInvalid, "--max_value_bytes"},
      {"PageSqlValueIsJustAValue", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         *r.add_filters() = MakeFilter("name", v1::Filter::EQUAL,
                                       Str("x' OR '1'='1'; DROP TABLE users"));
       }),
       StatusCode::OK, ""},
      {"PageInvalidUtf8FilterColumn", Target::kDemo, "Page",
       LenField(1, "users") +
           LenField(2, LenField(1, "\xff") + VarintField(2, 1)),
       kInvalid, "request is not a valid rowgate.v1.PageRequest message"},
      {"PageEmptyInMatchesNothing", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) { *r.add_filters() = InFilter("id", {}); }),
       StatusCode::OK, ""},
      {"PageHugeSizeIsCapped", Target::kDemo, "Page",
       Page([](v1::PageRequest& r) {
         r.set_page_size(std::numeric_limits<int32_t>::max());
       }),
       StatusCode::OK, ""},
      {"PageHugeOffsetIsRefused", Target::kDemo, "Page",
       Page([&](v1::PageRequest& r) { r.set_offset(int64_max); }), kInvalid,
       "is over 100000 (--max_page_offset)"},
      {"DeleteNoKeysDeletesNothing", Target::kDemo, "Delete",
       Delete("users", {}), StatusCode::OK, ""},
      {"BatchGetAtTheKeyLimit", Target::kDemo, "BatchGet",
       BatchGet("users", ManyInts(1000)), StatusCode::OK, ""},
      // ---- schema calls
      {"DescribeUnknownEntity", Target::kDemo, "DescribeEntity",
       Describe("pg_catalog.pg_authid"), kInvalid, "unknown entity"},
      {"DescribeHugeEntity", Target::kDemo, "DescribeEntity", Describe(huge),
       kInvalid, "at most 63"},
      {"DescribeInvalidUtf8", Target::kDemo, "DescribeEntity",
       LenField(1, "\xe2\x28\xa1"), kInvalid,
       "not a valid rowgate.v1.DescribeEntityRequest message"},
      {"ListEntitiesGarbage", Target::kDemo, "ListEntities",
       std::string("\x0a\xff\xff\xff\xff\x0f", 6), kInvalid,
       "not a valid rowgate.v1.ListEntitiesRequest message"},
      // ---- every other type's limits (schema bad_input)
      {"SmallintOverflow", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"small", Int(40000)}}), kInvalid,
       "value 40000 (smallint) is out of range for column \"small\""},
      {"SmallintUnderflow", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"small", Int(-32769)}}), kInvalid,
       "out of range for column \"small\""},
      {"IntegerOverflow", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"medium", Int(int64_max)}}), kInvalid,
       "(integer) is out of range for column \"medium\""},
      {"BigintFromDouble", Target::kTyped, "Insert", typed({{"id", Dbl(1.5)}}),
       kInvalid, "takes int64_value"},
      {"RealOverflow", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"ratio", Dbl(1e300)}}), kInvalid,
       "(real) is out of range for column \"ratio\""},
      {"NumericNaNDouble", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"amount", Dbl(nan)}}), kInvalid,
       "(numeric) is out of range for column \"amount\""},
      {"NumericInfinityDouble", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"amount", Dbl(inf)}}), kInvalid,
       "out of range for column \"amount\""},
      {"NumericPrecisionOverflow", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"amount", Str("12345678901")}}), kInvalid,
       "numeric field overflow"},
      {"NumericNotANumber", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"amount", Str("12,5; DROP")}}), kInvalid,
       "invalid input syntax for type numeric"},
      {"BoolFromString", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"flag", Str("true")}}), kInvalid,
       "column \"flag\" takes bool_value, not string_value"},
      {"BoolFromInt", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"flag", Int(1)}}), kInvalid,
       "takes bool_value, not int64_value"},
      {"BytesFromString", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"blob", Str("\\x00")}}), kInvalid,
       "takes bytes_value, not string_value"},
      {"HugeBytes", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"blob", Bytes(two_mib)}}), kInvalid,
       "--max_value_bytes"},
      {"TimestamptzBeforeYear1", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"at", Time(-62135596801)}}), kInvalid,
       "out of range"},
      {"DateOutOfRange", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"day", Str("2024-02-30")}}), kInvalid,
       "out of range"},
      {"DateFromBool", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"day", Bool(false)}}), kInvalid,
       "takes string_value"},
      {"UuidMalformed", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"token", Str("not-a-uuid")}}), kInvalid,
       "invalid input syntax for type uuid"},
      {"UuidKeyMalformed", Target::kTyped, "BatchGet",
       BatchGet("typed", {Str("zzzz")}, "token"), kInvalid, "is not a uuid"},
      {"JsonbMalformed", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"doc", Str("{nope")}}), kInvalid,
       "invalid input syntax for type json"},
      {"JsonbHugeMalformedIsBounded", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"doc", Str("{" + std::string(500000, 'j'))}}),
       kInvalid, "invalid input syntax for type json"},
      {"CharTooLong", Target::kTyped, "Insert",
       typed({{"id", Int(1)}, {"padded", Str("toolong")}}), kInvalid,
       "too long"},
      {"TooManyParameters", Target::kTyped, "Insert",
       Insert(
           "typed",
           ManyRows(33000,
                    [](int i) {
                      return MakeRow({{"id", Int(i + 1)}, {"small", Int(1)}});
                    })),
       kInvalid,
       "needs 66000 bound parameters; PostgreSQL takes at most 65535"},
  };
  return cases;
}

// ---------------------------------------------------------------- harness

// Calls DataService/`method` with `request` as raw bytes.
grpc::Status CallRaw(grpc::GenericStub& stub, const std::string& method,
                     const std::string& request) {
  grpc::Slice slice(request);
  grpc::ByteBuffer in(&slice, 1);
  grpc::ByteBuffer out;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(context.get(), "/rowgate.v1.DataService/" + method,
                 grpc::StubOptions(), &in, &out, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

// A checksum of every row of `table` (sorted by its text: any key).
std::string TableChecksum(const std::string& table) {
  return ExecSql(
      "SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), "
      "'empty') FROM " +
      table + " t")[0][0];
}

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      CREATE EXTENSION IF NOT EXISTS citext;
      DROP SCHEMA IF EXISTS bad_input CASCADE;
      CREATE SCHEMA bad_input;
      CREATE TABLE bad_input.typed (
        id bigint PRIMARY KEY, small smallint, medium integer, ratio real,
        amount numeric(8, 2), flag boolean, blob bytea, at timestamptz,
        day date, token uuid, doc jsonb, padded char(5),
        lastchange timestamp DEFAULT timezone('UTC', now()));
      INSERT INTO bad_input.typed (id, small, padded) VALUES (1, 1, 'one');
      CREATE TABLE bad_input.padded (code char(5) PRIMARY KEY, n int);
      CREATE TABLE bad_input.folded (code citext PRIMARY KEY, n int);
      INSERT INTO bad_input.padded VALUES ('abc', 1), ('del', 2);
      INSERT INTO bad_input.folded VALUES ('Alice', 1), ('Carol', 2);
    )sql");
    demo_ = RowgateProcess::Start().release();
    typed_ = RowgateProcess::Start(
                 {"--schema=bad_input", "--max_keys_per_request=40000"})
                 .release();
  }
  static void TearDownTestSuite() {
    delete demo_;
    delete typed_;
    demo_ = typed_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(demo_, nullptr);
    ASSERT_NE(typed_, nullptr);
  }

  static inline RowgateProcess* demo_ = nullptr;
  static inline RowgateProcess* typed_ = nullptr;
};

const char* const kTables[] = {
    "users",           "groups",           "grouptypes",      "users_groups",
    "bad_input.typed", "bad_input.padded", "bad_input.folded"};

TEST_F(BadInputTest, EveryMalformedRequestGetsItsStatusAndHarmsNothing) {
  Client client(demo_->NewChannel());
  Demo demo;
  demo.user_id = std::stoll(ExecSql("SELECT min(id) FROM users")[0][0]);
  v1::PageResponse page;
  v1::PageRequest first;
  first.set_entity("users");
  first.set_page_size(1);
  ASSERT_TRUE(client.Page(first, &page).ok());
  demo.users_token = page.next_page_token();
  ASSERT_FALSE(demo.users_token.empty());

  std::vector<std::string> before;
  for (const char* table : kTables) before.push_back(TableChecksum(table));

  grpc::GenericStub demo_stub(demo_->NewChannel());
  grpc::GenericStub typed_stub(typed_->NewChannel());
  const std::vector<Case> cases = Cases(demo);
  EXPECT_GE(cases.size(), 60u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const grpc::Status status =
        CallRaw(c.target == Target::kDemo ? demo_stub : typed_stub, c.method,
                c.request);
    EXPECT_EQ(status.error_code(), c.code)
        << c.name << ": " << status.error_message().substr(0, 300);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
    EXPECT_LE(status.error_message().size(), kMaxMessageBytes) << c.name;
  }

  // Both servers still serve, and nothing was written.
  for (RowgateProcess* server : {demo_, typed_}) {
    auto health = grpc::health::v1::Health::NewStub(server->NewChannel());
    grpc::health::v1::HealthCheckResponse response;
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    ASSERT_TRUE(health
                    ->Check(context.get(),
                            grpc::health::v1::HealthCheckRequest(), &response)
                    .ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
  EXPECT_FALSE(client.MustGet("users", demo.user_id).fields().empty());
  for (size_t i = 0; i < std::size(kTables); ++i) {
    EXPECT_EQ(TableChecksum(kTables[i]), before[i]) << kTables[i];
  }
}

// A message a stream cannot parse used to end the stream with OK, silently
// dropping it and every later request. Now the stream ends with
// INVALID_ARGUMENT naming the message type, after the answers to the
// requests before it.
TEST_F(BadInputTest, UnparseableStreamMessageEndsTheStreamWithInvalidArgument) {
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  std::shared_ptr<grpc::Channel> channel = demo_->NewChannel();
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                       grpc::ByteBuffer>::
                 Create(channel.get(),
                        grpc::internal::RpcMethod(
                            "/rowgate.v1.DataService/StreamBatchGet",
                            grpc::internal::RpcMethod::BIDI_STREAMING),
                        context.get()));
  auto send = [&](const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    return stream->Write(buffer);
  };
  v1::StreamBatchGetRequest good;
  good.set_tag(1);
  *good.mutable_request() = BatchGetRequest("users", Ints({1}));
  ASSERT_TRUE(send(good.SerializeAsString()));
  // tag 2 with a BatchGetRequest whose entity is invalid UTF-8.
  ASSERT_TRUE(send(VarintField(1, 2) + LenField(2, LenField(1, "\xff\xfe"))));
  good.set_tag(3);
  send(good.SerializeAsString());  // may already be refused
  stream->WritesDone();
  std::vector<uint64_t> tags;
  grpc::ByteBuffer raw;
  while (stream->Read(&raw)) {
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(raw.Dump(&slices).ok());
    std::string bytes;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    v1::StreamBatchGetResponse answer;
    ASSERT_TRUE(answer.ParseFromString(bytes));
    tags.push_back(answer.tag());
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("request is not a valid "
                        "rowgate.v1.StreamBatchGetRequest message"));
  EXPECT_EQ(tags, std::vector<uint64_t>({1}));
}

// char(n) gives back "abc  " and citext "Alice" for the keys "abc" and
// "ALICE": BatchGet used to say not found, and Delete deleted the row yet
// reported nothing deleted.
TEST_F(BadInputTest, PaddedAndCaseInsensitiveKeysAreAnsweredAsAsked) {
  Client client(typed_->NewChannel());
  v1::BatchGetResponse got;
  ASSERT_TRUE(
      client
          .BatchGet(BatchGetRequest("padded", {Str("abc"), Str("abc  ")}), &got)
          .ok());
  ASSERT_EQ(got.results_size(), 2);
  EXPECT_TRUE(got.results(0).found());
  EXPECT_TRUE(got.results(1).found());
  ASSERT_TRUE(
      client
          .BatchGet(BatchGetRequest("folded", {Str("ALICE"), Str("alice")}),
                    &got)
          .ok());
  ASSERT_EQ(got.results_size(), 2);
  EXPECT_TRUE(got.results(0).found());
  EXPECT_TRUE(got.results(1).found());
  EXPECT_EQ(Field(got.results(0).rows(0), "code").string_value(), "Alice");

  // Delete reports the keys as asked; the rows are restored afterwards so
  // the checksums of the other test stay put.
  v1::DeleteRequest del;
  del.set_entity("folded");
  *del.add_keys() = Str("CAROL");
  v1::DeleteResponse deleted;
  ASSERT_TRUE(client.Delete(del, &deleted).ok());
  ASSERT_EQ(deleted.deleted_keys_size(), 1);
  EXPECT_EQ(deleted.deleted_keys(0).string_value(), "CAROL");
  del.set_entity("padded");
  *del.mutable_keys(0) = Str("del");
  ASSERT_TRUE(client.Delete(del, &deleted).ok());
  ASSERT_EQ(deleted.deleted_keys_size(), 1);
  ExecSql(
      "INSERT INTO bad_input.folded VALUES ('Carol', 2); INSERT INTO "
      "bad_input.padded VALUES ('del', 2)");
}

}  // namespace
}  // namespace rowgate::e2e
