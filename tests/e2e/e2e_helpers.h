// Shared pieces of the end-to-end tests: Value and request builders, a
// client with a deadline on every call, status matchers, and a fixture base
// that starts one rowgate per test suite.
//
// Everything here is for the test's main thread unless it says otherwise;
// Client is thread-safe (gRPC stubs are).
#ifndef ROWGATE_TESTS_E2E_E2E_HELPERS_H_
#define ROWGATE_TESTS_E2E_E2E_HELPERS_H_

#include <gmock/gmock.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::e2e {

namespace v1 = ::rowgate::v1;

// ------------------------------------------------------------------ values

v1::Value Int(int64_t value);
v1::Value Str(std::string value);
v1::Value Null();
v1::Value Ts(const google::protobuf::Timestamp& value);
std::vector<v1::Value> Ints(std::initializer_list<int64_t> values);
// A composite key: a list_value of `parts`, in the key's column order.
v1::Value CompositeKey(std::vector<v1::Value> parts);
v1::Value CompositeKey(std::initializer_list<int64_t> parts);

// Microseconds since the epoch.
int64_t Micros(const google::protobuf::Timestamp& ts);

// row.fields[column], failing the test (and returning a default Value) when
// the column is absent.
v1::Value Field(const v1::Row& row, const std::string& column);
// The int64 "id" of a row (0 after failing the test if absent or not int64).
int64_t IdOf(const v1::Row& row);
// The ids of `rows`, in order.
std::vector<int64_t> IdsOf(
    const google::protobuf::RepeatedPtrField<v1::Row>& rows);
// The names of the fields a row carries, sorted.
std::vector<std::string> FieldNames(const v1::Row& row);

// A row from (column, value) pairs.
v1::Row MakeRow(std::initializer_list<std::pair<std::string, v1::Value>> cells);

// ---------------------------------------------------------------- requests

v1::BatchGetRequest BatchGetRequest(const std::string& entity,
                                    std::vector<v1::Value> keys,
                                    const std::string& key_column = "",
                                    std::vector<std::string> columns = {});
v1::Filter MakeFilter(const std::string& column, v1::Filter::Operator op,
                      v1::Value value = v1::Value());
v1::Filter InFilter(const std::string& column, std::vector<v1::Value> values);

// ------------------------------------------------------------------ client

// A context whose deadline fails a call instead of hanging the test.
std::unique_ptr<grpc::ClientContext> NewContext(
    absl::Duration timeout = absl::Seconds(10));

// DataService and AdminService over one channel; each call has a 10 s
// deadline. Thread-safe.
class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel);

  grpc::Status BatchGet(const v1::BatchGetRequest& request,
                        v1::BatchGetResponse* response);
  grpc::Status Insert(const v1::InsertRequest& request,
                      v1::InsertResponse* response);
  grpc::Status Update(const v1::UpdateRequest& request,
                      v1::UpdateResponse* response);
  grpc::Status Delete(const v1::DeleteRequest& request,
                      v1::DeleteResponse* response);
  grpc::Status Page(const v1::PageRequest& request, v1::PageResponse* response);

  // Convenience calls that fail the test on an error status.
  // Inserts `rows` into `entity` and returns the stored rows.
  std::vector<v1::Row> MustInsert(const std::string& entity,
                                  std::vector<v1::Row> rows);
  // The row of `entity` with primary key `id` (empty Row if not found).
  v1::Row MustGet(const std::string& entity, int64_t id);
  v1::LoaderStats MustGetLoaderStats();

  v1::DataService::Stub* data() { return data_.get(); }
  v1::AdminService::Stub* admin() { return admin_.get(); }

 private:
  std::unique_ptr<v1::DataService::Stub> data_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

// ------------------------------------------------------------------ checks

// Matches a grpc::Status with the given code (and message).
MATCHER_P(StatusIs, code,
          std::string("has code ") + ::testing::PrintToString(code)) {
  return arg.error_code() == code;
}
MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + ::testing::PrintToString(code) +
               " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  return arg.error_code() == code &&
         ::testing::Matches(message_matcher)(arg.error_message());
}
// Matches an OK grpc::Status.
MATCHER(IsOk, "is OK") { return arg.ok(); }

// ----------------------------------------------------------------- data

// A string unique to this test process run (e.g. for emails), so reruns
// against the same database do not collide.
std::string UniqueTag(absl::string_view prefix);
// An SQL string literal.
std::string SqlQuote(absl::string_view text);
// A fresh number from all_id_seq (for explicit, never-used ids).
int64_t NextSequenceValue();
// Inserts `count` users by SQL with surname `surname`, name
// "<name_prefix><i>" (i zero-padded), email "<i>@<surname>.test" and
// externalId i (1-based); returns their ids in insertion (= id) order.
std::vector<int64_t> InsertUsersBySql(const std::string& surname, int count,
                                      const std::string& name_prefix = "n");

// ------------------------------------------------------------ statements

// The exact text of the statement the loader runs to look rows of `entity`
// up by `key_column` (the primary key when empty): storage::LookupSql over
// the test database's live catalog. Fails the test (and returns "") if the
// entity or column is unknown. Blocks on a connection of its own.
std::string LookupStatement(const std::string& entity,
                            const std::string& key_column = "");

// How many times PostgreSQL ran exactly `statement` (its text as
// pg_stat_statements records it) in the test database. Unlike a substring
// count, Delete's and Page's statements are never counted with a lookup.
long long StatementCallsExactly(const std::string& statement);

// ------------------------------------------------------------------ fixture

// One rowgate (default flags) shared by every test of the suite `Suite`.
// Example: class BatchGetTest : public SharedServerTest<BatchGetTest> {};
template <typename Suite>
class SharedServerTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() { server_ = RowgateProcess::Start().release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

 protected:
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "rowgate did not start for this suite";
    client_ = std::make_unique<Client>(server_->NewChannel());
  }
  Client& client() { return *client_; }
  static RowgateProcess& server() { return *server_; }

  static inline RowgateProcess* server_ = nullptr;
  std::unique_ptr<Client> client_;
};

}  // namespace rowgate::e2e

namespace grpc {
// Lets GoogleTest print a grpc::Status (found by argument-dependent lookup)
// instead of its bytes.
inline void PrintTo(const Status& status, std::ostream* os) {
  *os << "code " << status.error_code() << " \"" << status.error_message()
      << "\"";
}
}  // namespace grpc

#endif  // ROWGATE_TESTS_E2E_E2E_HELPERS_H_
