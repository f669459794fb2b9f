// The StreamBatchGet reactor's life cycle over a real in-process gRPC server:
// a stream cancelled with lookups in flight, a half-close with answers still
// being computed, and many streams cancelled while their answers arrive (the
// reactor may outlive OnDone; the last answer then deletes it). The loader's
// executor is a fake whose fetch blocks until the test opens a gate, so
// "in flight" is certain; no database is needed. `make tsan` runs these
// under ThreadSanitizer, `make test-asan` under ASan with leak checks (a
// reactor never deleted is a leak).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "loader/batch_loader.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "service/data_service.h"
#include "service/memory_backend.h"
#include "tests/service/gated_executor.h"

namespace rowgate::service {
namespace {

class StreamBatchGetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loader_ =
        std::make_unique<loader::Loader>(loader::Loader::Options{}, executor_);
    service_ = std::make_unique<DataServiceImpl>(
        DataServiceOptions{}, MemoryBackendCatalog(), loader_.get(), nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::DataService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  // As rowgate's Server shuts down: gRPC first (every stream's OnDone has
  // run when this returns), then the executor (answers still being computed
  // are delivered, deleting reactors that outlived OnDone), then the loader
  // and the service the reactors used.
  void TearDown() override {
    if (server_) server_->Shutdown();
    executor_.Shutdown();
    loader_.reset();
    service_.reset();
  }

  static v1::StreamBatchGetRequest Lookup(uint64_t tag,
                                          std::vector<int64_t> ids) {
    v1::StreamBatchGetRequest message;
    message.set_tag(tag);
    message.mutable_request()->set_entity("users");
    for (int64_t id : ids) {
      message.mutable_request()->add_keys()->set_int64_value(id);
    }
    return message;
  }

  GatedExecutor executor_{2};
  std::unique_ptr<loader::Loader> loader_;
  std::unique_ptr<DataServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::DataService::Stub> stub_;
};

// Cancelled while one lookup is being fetched and four more wait behind it:
// every lookup is cancelled in the loader (none is fetched later), the
// stream ends CANCELLED, and the fetch that returns afterwards delivers to
// nobody.
TEST_F(StreamBatchGetTest, CancelWithLookupsInFlightDropsThemFromTheLoader) {
  grpc::ClientContext context;
  auto stream = stub_->StreamBatchGet(&context);
  ASSERT_TRUE(stream->Write(Lookup(1, {1})));
  executor_.AwaitFetches(1);  // the first lookup is in its query
  for (uint64_t tag = 2; tag <= 5; ++tag) {
    ASSERT_TRUE(stream->Write(Lookup(tag, {static_cast<int64_t>(tag)})));
  }
  // Read back nothing: all five are in flight until the gate opens. Wait
  // until the server has taken all five from the stream.
  while (loader_->Stats().requests < 5) std::this_thread::yield();
  context.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);

  server_->Shutdown();  // returns once the reactor's OnDone has run
  EXPECT_EQ(loader_->Stats().cancelled, 5u);
  executor_.SetOpen(true);
  executor_.Shutdown();
  EXPECT_EQ(executor_.fetches().size(), 1u);  // the four behind never went
}

// A client that half-closes with every answer still pending gets all of
// them, each with its tag and rows, and then OK.
TEST_F(StreamBatchGetTest, HalfCloseWithAnswersPendingDeliversAllThenOk) {
  grpc::ClientContext context;
  auto stream = stub_->StreamBatchGet(&context);
  ASSERT_TRUE(stream->Write(Lookup(10, {1, 2})));
  executor_.AwaitFetches(1);
  ASSERT_TRUE(stream->Write(Lookup(11, {3, 999})));
  ASSERT_TRUE(stream->Write(Lookup(12, {2})));
  ASSERT_TRUE(stream->WritesDone());
  while (loader_->Stats().requests < 3) std::this_thread::yield();
  executor_.SetOpen(true);

  std::map<uint64_t, v1::BatchGetResponse> answers;
  v1::StreamBatchGetResponse answer;
  while (stream->Read(&answer)) {
    ASSERT_FALSE(answer.has_error()) << answer.error().message();
    answers[answer.tag()] = answer.response();
  }
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(answers.size(), 3u);
  ASSERT_EQ(answers[10].results_size(), 2);
  EXPECT_TRUE(answers[10].results(1).found());
  EXPECT_EQ(answers[10].results(1).rows(0).fields().at("id").int64_value(), 2);
  ASSERT_EQ(answers[11].results_size(), 2);
  EXPECT_TRUE(answers[11].results(0).found());
  EXPECT_FALSE(answers[11].results(1).found());
  ASSERT_EQ(answers[12].results_size(), 1);
  EXPECT_EQ(answers[12].results(0).rows(0).fields().at("name").string_value(),
            "Name2");
}

// Many streams cancelled while their answers are being delivered on the
// executor's threads: OnCancel, OnDone and the answers race, and whichever
// comes last deletes the reactor exactly once (checked by ASan and TSAN;
// a reactor never deleted is a leak at exit).
TEST_F(StreamBatchGetTest, StreamsCancelledWhileAnswersArriveFinishCleanly) {
  executor_.SetOpen(true);
  for (int s = 0; s < 40; ++s) {
    grpc::ClientContext context;
    auto stream = stub_->StreamBatchGet(&context);
    for (uint64_t tag = 0; tag < 8; ++tag) {
      if (!stream->Write(Lookup(tag, {static_cast<int64_t>(tag + s)}))) break;
    }
    if (s % 2 == 0) {
      // Read one answer first, so cancellation meets answers being written.
      v1::StreamBatchGetResponse answer;
      stream->Read(&answer);
    }
    context.TryCancel();
    const grpc::StatusCode code = stream->Finish().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::CANCELLED ||
                code == grpc::StatusCode::OK)
        << code;
  }
  server_->Shutdown();
  executor_.Shutdown();
  const loader::LoaderStatsSnapshot stats = loader_->Stats();
  EXPECT_GT(stats.requests, 0u);
}

}  // namespace
}  // namespace rowgate::service
