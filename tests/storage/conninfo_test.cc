// The connection string rowgate hands to libpq: timeouts added to both the
// URI and the key=value forms, the user's own settings kept. Pure functions,
// no database.
#include "storage/conninfo.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <memory>
#include <string>

namespace rowgate::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// What libpq reads from `conninfo`: keyword -> value, for set keywords.
std::map<std::string, std::string> Parsed(const std::string& conninfo) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
  EXPECT_NE(options, nullptr) << (error != nullptr ? error : "") << conninfo;
  PQfreemem(error);
  std::map<std::string, std::string> out;
  if (options == nullptr) return out;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  return out;
}

TEST(ConnInfoTest, AddsTimeoutsToAUri) {
  absl::StatusOr<std::string> conninfo = ConnInfoWithTimeouts(
      "postgresql://app:s3cr%27t@db.example:6432/orders?sslmode=disable",
      DatabaseTimeouts{.connect = absl::Seconds(7)});
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  const auto parsed = Parsed(*conninfo);
  EXPECT_EQ(parsed.at("host"), "db.example");
  EXPECT_EQ(parsed.at("port"), "6432");
  EXPECT_EQ(parsed.at("dbname"), "orders");
  EXPECT_EQ(parsed.at("user"), "app");
  EXPECT_EQ(parsed.at("password"), "s3cr't");  // quoted, survives libpq
  EXPECT_EQ(parsed.at("sslmode"), "disable");
  EXPECT_EQ(parsed.at("connect_timeout"), "7");
  EXPECT_EQ(parsed.at("keepalives"), "1");
  EXPECT_EQ(parsed.at("keepalives_idle"), "10");
  EXPECT_EQ(parsed.at("tcp_user_timeout"), "10000");
}

TEST(ConnInfoTest, AddsTimeoutsToAUnixSocketUriWithoutAQueryOfItsOwn) {
  absl::StatusOr<std::string> conninfo =
      ConnInfoWithTimeouts("postgres:///rowgate?host=/tmp/pg", {});
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  const auto parsed = Parsed(*conninfo);
  EXPECT_EQ(parsed.at("host"), "/tmp/pg");
  EXPECT_EQ(parsed.at("dbname"), "rowgate");
  EXPECT_EQ(parsed.at("connect_timeout"), "5");
}

TEST(ConnInfoTest, AddsTimeoutsToAKeyValueString) {
  absl::StatusOr<std::string> conninfo = ConnInfoWithTimeouts(
      "host=127.0.0.1 dbname='my db' password='a b\\'c'", {});
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  const auto parsed = Parsed(*conninfo);
  EXPECT_EQ(parsed.at("host"), "127.0.0.1");
  EXPECT_EQ(parsed.at("dbname"), "my db");
  EXPECT_EQ(parsed.at("password"), "a b'c");
  EXPECT_EQ(parsed.at("connect_timeout"), "5");
}

// The user's settings win, in either form.
TEST(ConnInfoTest, KeepsTheUsersOwnTimeouts) {
  for (const std::string url :
       {"postgresql://h/db?connect_timeout=60&keepalives_idle=99",
        "host=h dbname=db connect_timeout=60 keepalives_idle=99"}) {
    SCOPED_TRACE(url);
    absl::StatusOr<std::string> conninfo = ConnInfoWithTimeouts(url, {});
    ASSERT_TRUE(conninfo.ok()) << conninfo.status();
    const auto parsed = Parsed(*conninfo);
    EXPECT_EQ(parsed.at("connect_timeout"), "60");
    EXPECT_EQ(parsed.at("keepalives_idle"), "99");
    EXPECT_EQ(parsed.at("tcp_user_timeout"), "10000");
  }
}

TEST(ConnInfoTest, LibpqsMinimumConnectTimeoutIsTwoSeconds) {
  absl::StatusOr<std::string> conninfo = ConnInfoWithTimeouts(
      "host=h", DatabaseTimeouts{.connect = absl::Milliseconds(300)});
  ASSERT_TRUE(conninfo.ok());
  EXPECT_EQ(Parsed(*conninfo).at("connect_timeout"), "2");
}

TEST(ConnInfoTest, RefusesWhatLibpqCannotParseWithoutEchoingIt) {
  absl::StatusOr<std::string> conninfo =
      ConnInfoWithTimeouts("host=h password='hunter2", {});
  EXPECT_EQ(conninfo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(conninfo.status().message(), HasSubstr("invalid database URL"));
  EXPECT_THAT(conninfo.status().message(), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace rowgate::storage
