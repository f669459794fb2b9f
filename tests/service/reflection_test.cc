// Checks what a reflection client (grpcurl, buf curl) sees from
// ReflectionServices, for grpc.reflection.v1 and v1alpha alike, over a real
// in-process server on a free port.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "rowgate/v1/rowgate.pb.h"
#include "service/reflection_service.h"

namespace rowgate::service {
namespace {

namespace pb = ::google::protobuf;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr char kDataService[] = "rowgate.v1.DataService";
constexpr char kV1Reflection[] = "grpc.reflection.v1.ServerReflection";
constexpr char kV1AlphaReflection[] =
    "grpc.reflection.v1alpha.ServerReflection";

struct V1 {
  using Reflection = ::grpc::reflection::v1::ServerReflection;
  using Request = ::grpc::reflection::v1::ServerReflectionRequest;
  using Response = ::grpc::reflection::v1::ServerReflectionResponse;
};
struct V1Alpha {
  using Reflection = ::grpc::reflection::v1alpha::ServerReflection;
  using Request = ::grpc::reflection::v1alpha::ServerReflectionRequest;
  using Response = ::grpc::reflection::v1alpha::ServerReflectionResponse;
};

template <typename Version>
class ReflectionTest : public ::testing::Test {
 protected:
  using Request = typename Version::Request;
  using Response = typename Version::Response;

  void SetUp() override {
    // Nothing else in this binary need reference rowgate.pb.cc; without this
    // the linker may leave its descriptors out of the generated pool.
    ASSERT_NE(rowgate::v1::Value::descriptor(), nullptr);

    reflection_.SetServiceNames(
        {kDataService, kV1Reflection, kV1AlphaReflection});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    reflection_.RegisterWith(builder);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    stub_ = Version::Reflection::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Sends each request on one stream, in order, and returns the answers.
  std::vector<Response> Ask(const std::vector<Request>& requests) {
    grpc::ClientContext context;
    auto stream = stub_->ServerReflectionInfo(&context);
    std::vector<Response> responses;
    for (const Request& request : requests) {
      EXPECT_TRUE(stream->Write(request));
      Response response;
      EXPECT_TRUE(stream->Read(&response));
      responses.push_back(std::move(response));
    }
    stream->WritesDone();
    grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return responses;
  }

  Response AskOne(const Request& request) {
    std::vector<Response> responses = Ask({request});
    return responses.empty() ? Response() : responses.front();
  }

  static Request SymbolRequest(const std::string& symbol) {
    Request request;
    request.set_file_containing_symbol(symbol);
    return request;
  }

  // The names of the files in a file_descriptor_response, in answer order.
  static std::vector<std::string> FileNames(const Response& response) {
    std::vector<std::string> names;
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      pb::FileDescriptorProto file;
      EXPECT_TRUE(file.ParseFromString(bytes));
      names.push_back(file.name());
    }
    return names;
  }

  ReflectionServices reflection_;  // Outlives server_: declared first.
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<typename Version::Reflection::Stub> stub_;
};

using Versions = ::testing::Types<V1, V1Alpha>;
TYPED_TEST_SUITE(ReflectionTest, Versions);

TYPED_TEST(ReflectionTest, ListServicesAnswersTheConfiguredNames) {
  typename TestFixture::Request request;
  request.set_list_services("");
  const auto response = this->AskOne(request);
  ASSERT_TRUE(response.has_list_services_response()) << response.DebugString();
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names,
              ElementsAre(kDataService, kV1Reflection, kV1AlphaReflection));
}

// The requested file comes first, then each of its imports.
TYPED_TEST(ReflectionTest, ServiceSymbolAnswersItsFileAndDependencies) {
  const auto response = this->AskOne(this->SymbolRequest(kDataService));
  ASSERT_TRUE(response.has_file_descriptor_response())
      << response.DebugString();
  const std::vector<std::string> names = this->FileNames(response);
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "rowgate/v1/rowgate.proto");
  EXPECT_THAT(names, UnorderedElementsAre("rowgate/v1/rowgate.proto",
                                          "google/protobuf/struct.proto",
                                          "google/protobuf/timestamp.proto"));
}

TYPED_TEST(ReflectionTest, MessageMethodFieldAndNestedSymbolsAreFound) {
  for (const char* symbol :
       {"rowgate.v1.Value", "rowgate.v1.Value.int64_value",
        "rowgate.v1.DataService.BatchGet", "rowgate.v1.Row.FieldsEntry",
        "rowgate.v1.AdminService"}) {
    const auto response = this->AskOne(this->SymbolRequest(symbol));
    ASSERT_TRUE(response.has_file_descriptor_response())
        << symbol << ": " << response.DebugString();
    EXPECT_EQ(this->FileNames(response).front(), "rowgate/v1/rowgate.proto")
        << symbol;
  }
}

// What a client does with the answer: build a pool and find the methods.
TYPED_TEST(ReflectionTest, AnsweredFilesBuildACompletePool) {
  const auto response = this->AskOne(this->SymbolRequest(kDataService));
  pb::SimpleDescriptorDatabase database;
  for (const std::string& bytes :
       response.file_descriptor_response().file_descriptor_proto()) {
    pb::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    ASSERT_TRUE(database.Add(file));
  }
  pb::DescriptorPool pool(&database);
  const pb::ServiceDescriptor* service = pool.FindServiceByName(kDataService);
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->method_count(), rowgate::v1::Value::descriptor()
                                         ->file()
                                         ->FindServiceByName("DataService")
                                         ->method_count());
  ASSERT_NE(service->FindMethodByName("BatchGet"), nullptr);
  EXPECT_EQ(service->FindMethodByName("BatchGet")->input_type()->full_name(),
            "rowgate.v1.BatchGetRequest");
}

TYPED_TEST(ReflectionTest, UnknownSymbolIsNotFoundAndTheStreamGoesOn) {
  typename TestFixture::Request list;
  list.set_list_services("");
  const auto responses =
      this->Ask({this->SymbolRequest("rowgate.v1.NoSuchThing"),
                 this->SymbolRequest("rowgate.v1.Value"), list});
  ASSERT_EQ(responses.size(), 3u);
  ASSERT_TRUE(responses[0].has_error_response());
  EXPECT_EQ(responses[0].error_response().error_code(),
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(responses[0].error_response().error_message(),
              ::testing::HasSubstr("rowgate.v1.NoSuchThing"));
  EXPECT_EQ(responses[0].original_request().file_containing_symbol(),
            "rowgate.v1.NoSuchThing");
  EXPECT_TRUE(responses[1].has_file_descriptor_response());
  EXPECT_TRUE(responses[2].has_list_services_response());
}

TYPED_TEST(ReflectionTest, FileByFilenameAnswersTheFileAndDependencies) {
  typename TestFixture::Request request;
  request.set_file_by_filename("rowgate/v1/rowgate.proto");
  const auto response = this->AskOne(request);
  ASSERT_TRUE(response.has_file_descriptor_response())
      << response.DebugString();
  EXPECT_THAT(
      this->FileNames(response),
      ElementsAre("rowgate/v1/rowgate.proto", ::testing::_, ::testing::_));

  request.set_file_by_filename("google/protobuf/timestamp.proto");
  EXPECT_THAT(this->FileNames(this->AskOne(request)),
              ElementsAre("google/protobuf/timestamp.proto"));
}

TYPED_TEST(ReflectionTest, UnknownFilenameIsNotFound) {
  typename TestFixture::Request request;
  request.set_file_by_filename("rowgate/v1/missing.proto");
  const auto response = this->AskOne(request);
  ASSERT_TRUE(response.has_error_response()) << response.DebugString();
  EXPECT_EQ(response.error_response().error_code(),
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

// descriptor.proto's option messages are the usual extendees; rowgate links
// no extensions of them, so the list is empty but the type is known.
TYPED_TEST(ReflectionTest, ExtensionQueriesAnswerKnownTypesOnly) {
  typename TestFixture::Request numbers;
  numbers.set_all_extension_numbers_of_type("google.protobuf.FieldOptions");
  typename TestFixture::Request unknown_type;
  unknown_type.set_all_extension_numbers_of_type("rowgate.v1.NoSuchType");
  typename TestFixture::Request extension;
  extension.mutable_file_containing_extension()->set_containing_type(
      "google.protobuf.FieldOptions");
  extension.mutable_file_containing_extension()->set_extension_number(99999);
  const auto responses = this->Ask({numbers, unknown_type, extension});
  ASSERT_EQ(responses.size(), 3u);

  ASSERT_TRUE(responses[0].has_all_extension_numbers_response())
      << responses[0].DebugString();
  EXPECT_EQ(responses[0].all_extension_numbers_response().base_type_name(),
            "google.protobuf.FieldOptions");
  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(responses[i].has_error_response())
        << responses[i].DebugString();
    EXPECT_EQ(responses[i].error_response().error_code(),
              static_cast<int>(grpc::StatusCode::NOT_FOUND));
  }
}

TYPED_TEST(ReflectionTest, EmptyRequestIsInvalidArgument) {
  const auto response = this->AskOne(typename TestFixture::Request());
  ASSERT_TRUE(response.has_error_response()) << response.DebugString();
  EXPECT_EQ(response.error_response().error_code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
}

}  // namespace
}  // namespace rowgate::service
