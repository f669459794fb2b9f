// End-to-end: BatchGet and StreamBatchGet against a real rowgate and the
// demo data (users 1..10, grouptypes 11, 12, groups 13..16).
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::e2e {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr int64_t kMissingId = 999999;

class BatchGetTest : public SharedServerTest<BatchGetTest> {};

// The notebook's example: keys [1, 2, 3, 4, 4] give five results in request
// order, the duplicate answered too, each with the user's full row.
TEST_F(BatchGetTest, AnswersDuplicateKeysInOrder) {
  v1::BatchGetResponse response;
  ASSERT_THAT(client().BatchGet(BatchGetRequest("users", Ints({1, 2, 3, 4, 4})),
                                &response),
              IsOk());
  ASSERT_THAT(response.results(), SizeIs(5));
  const std::vector<int64_t> expected = {1, 2, 3, 4, 4};
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(absl::StrCat("result ", i));
    const v1::KeyResult& result = response.results(i);
    EXPECT_EQ(result.key().int64_value(), expected[i]);
    EXPECT_TRUE(result.found());
    ASSERT_THAT(result.rows(), SizeIs(1));
    const v1::Row& row = result.rows(0);
    EXPECT_THAT(FieldNames(row), ElementsAre("email", "externalId", "id",
                                             "lastchange", "name", "surname"));
    EXPECT_EQ(IdOf(row), expected[i]);
    EXPECT_EQ(Field(row, "lastchange").kind_case(), v1::Value::kTimestampValue);
    EXPECT_EQ(Field(row, "externalId").int64_value(), 1000 + expected[i]);
  }
  const v1::Row& first = response.results(0).rows(0);
  EXPECT_EQ(Field(first, "name").string_value(), "Leslie");
  EXPECT_EQ(Field(first, "surname").string_value(), "Cannon");
  EXPECT_EQ(Field(first, "email").string_value(),
            "leslie.cannon@university.world");
  EXPECT_EQ(Field(response.results(3).rows(0), "name").string_value(), "Nora");
  EXPECT_TRUE(
      MessageDifferencer::Equals(response.results(3), response.results(4)));
  // lastchange is exact to the microsecond.
  auto sql = rowgate::testing::ExecSql(
      "SELECT (extract(epoch FROM lastchange) * 1000000)::bigint "
      "FROM users WHERE id = 1");
  EXPECT_EQ(Micros(Field(first, "lastchange").timestamp_value()),
            std::stoll(sql.at(0).at(0)));
}

// ROW_FORMAT_LIST answers the same rows as the default map format, each as
// values in the order of the response's columns, projection applied, with
// one-to-many and missing keys alike; a row_format that is not a RowFormat
// is INVALID_ARGUMENT naming it.
TEST_F(BatchGetTest, RowFormatListAnswersTheSameRowsAsValueLists) {
  for (const std::string& key_column :
       {std::string(), std::string("grouptype_id")}) {
    SCOPED_TRACE(key_column.empty() ? "primary key" : key_column);
    const std::string entity = key_column.empty() ? "users" : "groups";
    v1::BatchGetRequest request =
        BatchGetRequest(entity,
                        key_column.empty() ? Ints({3, kMissingId, 1, 3})
                                           : Ints({11, kMissingId, 12}),
                        key_column);
    v1::BatchGetResponse as_maps;
    ASSERT_THAT(client().BatchGet(request, &as_maps), IsOk());
    request.set_row_format(v1::ROW_FORMAT_LIST);
    v1::BatchGetResponse as_lists;
    ASSERT_THAT(client().BatchGet(request, &as_lists), IsOk());
    ASSERT_EQ(as_lists.results_size(), as_maps.results_size());
    EXPECT_FALSE(as_lists.columns().empty());
    EXPECT_TRUE(as_maps.columns().empty());
    for (int i = 0; i < as_maps.results_size(); ++i) {
      SCOPED_TRACE(absl::StrCat("result ", i));
      const v1::KeyResult& map_result = as_maps.results(i);
      const v1::KeyResult& list_result = as_lists.results(i);
      EXPECT_TRUE(
          MessageDifferencer::Equals(map_result.key(), list_result.key()));
      EXPECT_EQ(map_result.found(), list_result.found());
      EXPECT_THAT(list_result.rows(), IsEmpty());
      ASSERT_EQ(list_result.value_rows_size(), map_result.rows_size());
      for (int r = 0; r < map_result.rows_size(); ++r) {
        const auto& fields = map_result.rows(r).fields();
        const v1::ValueRow& values = list_result.value_rows(r);
        ASSERT_EQ(values.values_size(), as_lists.columns_size());
        ASSERT_EQ(static_cast<size_t>(as_lists.columns_size()), fields.size());
        for (int c = 0; c < as_lists.columns_size(); ++c) {
          auto it = fields.find(as_lists.columns(c));
          ASSERT_NE(it, fields.end()) << as_lists.columns(c);
          EXPECT_TRUE(MessageDifferencer::Equals(it->second, values.values(c)))
              << as_lists.columns(c);
        }
      }
    }
  }
  // A projection: only the columns asked, in the order asked.
  v1::BatchGetRequest projected = BatchGetRequest("users", Ints({2}));
  projected.add_columns("name");
  projected.add_columns("id");
  projected.set_row_format(v1::ROW_FORMAT_LIST);
  v1::BatchGetResponse response;
  ASSERT_THAT(client().BatchGet(projected, &response), IsOk());
  EXPECT_THAT(response.columns(), ElementsAre("name", "id"));
  ASSERT_THAT(response.results(0).value_rows(), SizeIs(1));
  EXPECT_EQ(response.results(0).value_rows(0).values(1).int64_value(), 2);

  v1::BatchGetRequest bad = BatchGetRequest("users", Ints({2}));
  bad.set_row_format(static_cast<v1::RowFormat>(7));
  grpc::Status status = client().BatchGet(bad, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("row_format 7"));
}

// A key without a row is answered not-found in its place.
TEST_F(BatchGetTest, ReportsMissingKeyAsNotFoundInPlace) {
  v1::BatchGetResponse response;
  ASSERT_THAT(
      client().BatchGet(BatchGetRequest("users", Ints({2, kMissingId, 3})),
                        &response),
      IsOk());
  ASSERT_THAT(response.results(), SizeIs(3));
  EXPECT_TRUE(response.results(0).found());
  EXPECT_EQ(IdOf(response.results(0).rows(0)), 2);
  EXPECT_EQ(response.results(1).key().int64_value(), kMissingId);
  EXPECT_FALSE(response.results(1).found());
  EXPECT_THAT(response.results(1).rows(), IsEmpty());
  EXPECT_TRUE(response.results(2).found());
  ASSERT_THAT(response.results(2).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(response.results(2).rows(0)), 3);
}

// A non-key column gives every matching row (one-to-many).
TEST_F(BatchGetTest, ByForeignKeyColumnReturnsEveryMatch) {
  v1::BatchGetResponse response;
  ASSERT_THAT(client().BatchGet(BatchGetRequest("groups", Ints({11, 12, 999}),
                                                "grouptype_id"),
                                &response),
              IsOk());
  ASSERT_THAT(response.results(), SizeIs(3));
  EXPECT_TRUE(response.results(0).found());
  EXPECT_THAT(IdsOf(response.results(0).rows()), UnorderedElementsAre(13, 14));
  EXPECT_TRUE(response.results(1).found());
  EXPECT_THAT(IdsOf(response.results(1).rows()), UnorderedElementsAre(15, 16));
  EXPECT_EQ(response.results(2).key().int64_value(), 999);
  EXPECT_FALSE(response.results(2).found());
  EXPECT_THAT(response.results(2).rows(), IsEmpty());
}

// Text keys on a text column; integer and NULL cells come back typed.
TEST_F(BatchGetTest, ByTextColumnMapsIntegerAndNullCells) {
  v1::BatchGetResponse response;
  ASSERT_THAT(
      client().BatchGet(
          BatchGetRequest("groups", {Str("FS-PHY"), Str("FS")}, "externalId"),
          &response),
      IsOk());
  ASSERT_THAT(response.results(), SizeIs(2));
  ASSERT_THAT(response.results(0).rows(), SizeIs(1));
  const v1::Row& physics = response.results(0).rows(0);
  EXPECT_EQ(IdOf(physics), 15);
  EXPECT_EQ(Field(physics, "entryYearId").int64_value(), 2020);
  EXPECT_EQ(Field(physics, "name").string_value(), "Department of Physics");
  ASSERT_THAT(response.results(1).rows(), SizeIs(1));
  const v1::Row& science = response.results(1).rows(0);
  EXPECT_EQ(IdOf(science), 13);
  EXPECT_EQ(Field(science, "entryYearId").kind_case(), v1::Value::kNullValue);
}

// `columns` projects: only the named columns come back.
TEST_F(BatchGetTest, ReturnsOnlyRequestedColumns) {
  v1::BatchGetResponse response;
  ASSERT_THAT(
      client().BatchGet(BatchGetRequest("users", Ints({1, 2}), "", {"email"}),
                        &response),
      IsOk());
  ASSERT_THAT(response.results(), SizeIs(2));
  ASSERT_THAT(response.results(0).rows(), SizeIs(1));
  EXPECT_THAT(FieldNames(response.results(0).rows(0)), ElementsAre("email"));
  EXPECT_EQ(Field(response.results(0).rows(0), "email").string_value(),
            "leslie.cannon@university.world");
  ASSERT_THAT(response.results(1).rows(), SizeIs(1));
  EXPECT_THAT(FieldNames(response.results(1).rows(0)), ElementsAre("email"));
}

TEST_F(BatchGetTest, RejectsUnknownEntityNamingIt) {
  v1::BatchGetResponse response;
  EXPECT_THAT(client().BatchGet(BatchGetRequest("no_such_entity", Ints({1})),
                                &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no_such_entity")));
}

TEST_F(BatchGetTest, RejectsUnknownKeyColumnNamingIt) {
  v1::BatchGetResponse response;
  EXPECT_THAT(
      client().BatchGet(
          BatchGetRequest("users", Ints({1}), "no_such_key_column"), &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
               HasSubstr("no_such_key_column")));
}

TEST_F(BatchGetTest, RejectsUnknownColumnNamingIt) {
  v1::BatchGetResponse response;
  EXPECT_THAT(client().BatchGet(BatchGetRequest("users", Ints({1}), "",
                                                {"email", "no_such_column"}),
                                &response),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                       HasSubstr("no_such_column")));
}

TEST_F(BatchGetTest, RejectsStringKeyForBigintKey) {
  v1::BatchGetResponse response;
  EXPECT_THAT(
      client().BatchGet(BatchGetRequest("users", {Str("1")}), &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
}

TEST_F(BatchGetTest, EmptyKeyListGivesNoResults) {
  v1::BatchGetResponse response;
  ASSERT_THAT(client().BatchGet(BatchGetRequest("users", {}), &response),
              IsOk());
  EXPECT_THAT(response.results(), IsEmpty());
}

// --max_keys_per_request bounds one request.
TEST(BatchGetLimitTest, RejectsMoreKeysThanMaxKeysPerRequest) {
  auto server = RowgateProcess::Start({"--max_keys_per_request=5"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  v1::BatchGetResponse response;
  EXPECT_THAT(
      client.BatchGet(BatchGetRequest("users", Ints({1, 2, 3, 4, 5, 6})),
                      &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_THAT(client.BatchGet(BatchGetRequest("users", Ints({1, 2, 3, 4, 5})),
                              &response),
              IsOk());
  EXPECT_THAT(response.results(), SizeIs(5));
}

// ------------------------------------------------------------ StreamBatchGet

class StreamBatchGetTest : public SharedServerTest<StreamBatchGetTest> {
 protected:
  using Stream = grpc::ClientReaderWriter<v1::StreamBatchGetRequest,
                                          v1::StreamBatchGetResponse>;

  static v1::StreamBatchGetRequest Tagged(uint64_t tag,
                                          v1::BatchGetRequest request) {
    v1::StreamBatchGetRequest tagged;
    tagged.set_tag(tag);
    *tagged.mutable_request() = std::move(request);
    return tagged;
  }
};

// 50 requests written before reading any are each answered exactly once,
// under their own tag, with their own rows.
TEST_F(StreamBatchGetTest, AnswersManyRequestsInFlightEachOnceByTag) {
  auto context = NewContext();
  std::unique_ptr<Stream> stream =
      client().data()->StreamBatchGet(context.get());
  constexpr int kRequests = 50;
  auto keys_of = [](int i) -> std::vector<int64_t> {
    return {i % 10 + 1, (i + 3) % 10 + 1};
  };
  for (int i = 0; i < kRequests; ++i) {
    std::vector<int64_t> keys = keys_of(i);
    ASSERT_TRUE(stream->Write(Tagged(
        5000 + i, BatchGetRequest("users", {Int(keys[0]), Int(keys[1])}))));
  }
  std::map<uint64_t, v1::StreamBatchGetResponse> answers;
  for (int i = 0; i < kRequests; ++i) {
    v1::StreamBatchGetResponse answer;
    ASSERT_TRUE(stream->Read(&answer)) << "stream ended after " << i;
    EXPECT_TRUE(answers.emplace(answer.tag(), answer).second)
        << "tag " << answer.tag() << " answered twice";
  }
  ASSERT_THAT(answers, SizeIs(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE(absl::StrCat("request ", i));
    auto it = answers.find(5000 + i);
    ASSERT_NE(it, answers.end());
    ASSERT_TRUE(it->second.has_response()) << it->second.ShortDebugString();
    const v1::BatchGetResponse& response = it->second.response();
    ASSERT_THAT(response.results(), SizeIs(2));
    std::vector<int64_t> keys = keys_of(i);
    for (int k = 0; k < 2; ++k) {
      EXPECT_EQ(response.results(k).key().int64_value(), keys[k]);
      ASSERT_THAT(response.results(k).rows(), SizeIs(1));
      EXPECT_EQ(IdOf(response.results(k).rows(0)), keys[k]);
    }
  }
  ASSERT_TRUE(stream->WritesDone());
  v1::StreamBatchGetResponse extra;
  EXPECT_FALSE(stream->Read(&extra))
      << "unexpected " << extra.ShortDebugString();
  EXPECT_THAT(stream->Finish(), IsOk());
}

// A bad request answers `error` under its tag; the stream goes on.
TEST_F(StreamBatchGetTest, BadRequestAnswersErrorAndStreamContinues) {
  auto context = NewContext();
  std::unique_ptr<Stream> stream =
      client().data()->StreamBatchGet(context.get());
  ASSERT_TRUE(stream->Write(Tagged(1, BatchGetRequest("users", Ints({1})))));
  ASSERT_TRUE(
      stream->Write(Tagged(2, BatchGetRequest("no_such_entity", Ints({1})))));
  ASSERT_TRUE(stream->Write(Tagged(3, BatchGetRequest("users", Ints({3})))));
  std::map<uint64_t, v1::StreamBatchGetResponse> answers;
  for (int i = 0; i < 3; ++i) {
    v1::StreamBatchGetResponse answer;
    ASSERT_TRUE(stream->Read(&answer)) << "stream ended after " << i;
    answers[answer.tag()] = answer;
  }
  ASSERT_THAT(answers, SizeIs(3));
  ASSERT_TRUE(answers[2].has_error()) << answers[2].ShortDebugString();
  EXPECT_EQ(answers[2].error().code(), 3);
  EXPECT_THAT(answers[2].error().message(), HasSubstr("no_such_entity"));
  for (uint64_t tag : {1, 3}) {
    ASSERT_TRUE(answers[tag].has_response()) << answers[tag].ShortDebugString();
    ASSERT_THAT(answers[tag].response().results(), SizeIs(1));
    ASSERT_THAT(answers[tag].response().results(0).rows(), SizeIs(1));
    EXPECT_EQ(IdOf(answers[tag].response().results(0).rows(0)),
              static_cast<int64_t>(tag));
  }
  // Still usable after the error.
  ASSERT_TRUE(stream->Write(Tagged(4, BatchGetRequest("users", Ints({4})))));
  v1::StreamBatchGetResponse answer;
  ASSERT_TRUE(stream->Read(&answer));
  EXPECT_EQ(answer.tag(), 4u);
  ASSERT_TRUE(answer.has_response()) << answer.ShortDebugString();
  ASSERT_THAT(answer.response().results(), SizeIs(1));
  ASSERT_THAT(answer.response().results(0).rows(), SizeIs(1));
  EXPECT_EQ(IdOf(answer.response().results(0).rows(0)), 4);
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&answer));
  EXPECT_THAT(stream->Finish(), IsOk());
}

// A stream the client closes without any request ends OK.
TEST_F(StreamBatchGetTest, EndsOkWhenClientIsDone) {
  auto context = NewContext();
  std::unique_ptr<Stream> stream =
      client().data()->StreamBatchGet(context.get());
  ASSERT_TRUE(stream->WritesDone());
  v1::StreamBatchGetResponse answer;
  EXPECT_FALSE(stream->Read(&answer));
  EXPECT_THAT(stream->Finish(), IsOk());
}

}  // namespace
}  // namespace rowgate::e2e
