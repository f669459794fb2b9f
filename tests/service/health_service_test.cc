// HealthService (grpc.health.v1.Health) as a client sees it, over a real
// in-process server on a free port with callback_service() registered; and
// its Watch reactor driven by a fake gRPC stream whose writes complete only
// when the test says, which makes "one write in flight, then the latest"
// deterministic (a real server completes writes too fast to tell).
#include "service/health_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace rowgate::service {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ServingStatus = HealthCheckResponse::ServingStatus;

constexpr ServingStatus kServing = HealthCheckResponse::SERVING;
constexpr ServingStatus kNotServing = HealthCheckResponse::NOT_SERVING;
constexpr ServingStatus kUnknown = HealthCheckResponse::SERVICE_UNKNOWN;
constexpr char kData[] = "rowgate.v1.DataService";

// Every client call has one, so a bug fails the test instead of hanging it.
std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

// One client Watch stream.
struct WatchCall {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader;

  // The next status on the stream; none once it ended (or its deadline
  // passed).
  std::optional<ServingStatus> Next() {
    HealthCheckResponse response;
    if (!reader->Read(&response)) return std::nullopt;
    return response.status();
  }
  // Cancels the call and returns the status the client sees.
  grpc::Status Cancel() {
    context.TryCancel();
    return reader->Finish();
  }
};

// A Watch on the async client API, for a read that waits at most so long:
// the blocking reader cannot tell that nothing more came. One operation is
// in flight at a time, so any event on the queue is that operation's.
class AsyncWatch {
 public:
  AsyncWatch(Health::Stub& stub, const std::string& name) {
    context_.set_deadline(Deadline());
    HealthCheckRequest request;
    request.set_service(name);
    reader_ = stub.AsyncWatch(&context_, request, &cq_, this);
    bool ok = false;
    if (!Await(Deadline(), &ok) || !ok) ended_ = true;
  }
  ~AsyncWatch() {
    context_.TryCancel();
    bool ok;
    if (read_pending_) Await(Deadline(), &ok);  // ends (not ok) once cancelled
    grpc::Status status;
    reader_->Finish(&status, this);
    Await(Deadline(), &ok);
    cq_.Shutdown();
    void* tag;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // The next status if one arrives within `wait`; none if the stream ended
  // (then ended() is true) or nothing came in time (a later call goes on
  // waiting for the same message).
  std::optional<ServingStatus> NextWithin(std::chrono::milliseconds wait) {
    if (ended_) return std::nullopt;
    if (!read_pending_) {
      reader_->Read(&response_, this);
      read_pending_ = true;
    }
    bool ok = false;
    if (!Await(std::chrono::system_clock::now() + wait, &ok)) {
      return std::nullopt;
    }
    read_pending_ = false;
    if (!ok) {
      ended_ = true;
      return std::nullopt;
    }
    return response_.status();
  }
  bool ended() const { return ended_; }

 private:
  // True if the operation in flight completed by `until`.
  bool Await(std::chrono::system_clock::time_point until, bool* ok) {
    void* tag;
    return cq_.AsyncNext(&tag, ok, until) == grpc::CompletionQueue::GOT_EVENT;
  }

  grpc::ClientContext context_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::ClientAsyncReader<HealthCheckResponse>> reader_;
  HealthCheckResponse response_;
  bool read_pending_ = false;
  bool ended_ = false;
};

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A server built elsewhere in this binary may have turned gRPC's own
    // health service on, which would claim grpc.health.v1.Health too.
    grpc::EnableDefaultHealthCheckService(false);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(health_.callback_service());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    stub_ = Health::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) ShutdownServer();
    server_.reset();
  }

  // The deadline cancels any watch a failed test left open; health_ is
  // destroyed after the server (and aborts if a watch is still open). A
  // watch that never calls Finish would hold gRPC's Shutdown past any
  // deadline, so a watchdog ends the binary then rather than let it hang.
  void ShutdownServer() {
    std::mutex mu;
    std::condition_variable changed;
    bool returned = false;
    std::thread watchdog([&] {
      std::unique_lock<std::mutex> lock(mu);
      if (!changed.wait_for(lock, std::chrono::seconds(30),
                            [&] { return returned; })) {
        fprintf(stderr,
                "grpc::Server::Shutdown did not return: a call "
                "never finished\n");
        std::abort();
      }
    });
    server_->Shutdown(Deadline());
    {
      std::lock_guard<std::mutex> lock(mu);
      returned = true;
    }
    changed.notify_all();
    watchdog.join();
  }

  // Check(`name`): the status code, and the serving status when OK.
  grpc::Status Check(const std::string& name, ServingStatus* status) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    HealthCheckRequest request;
    request.set_service(name);
    HealthCheckResponse response;
    grpc::Status result = stub_->Check(&context, request, &response);
    *status = response.status();
    return result;
  }
  // The serving status Check answers for `name`, or its error code as text.
  std::string CheckText(const std::string& name) {
    ServingStatus status;
    grpc::Status result = Check(name, &status);
    if (!result.ok()) return absl::StrCat("code ", result.error_code());
    return HealthCheckResponse::ServingStatus_Name(status);
  }

  std::unique_ptr<WatchCall> Watch(const std::string& name) {
    auto call = std::make_unique<WatchCall>();
    call->context.set_deadline(Deadline());
    HealthCheckRequest request;
    request.set_service(name);
    call->reader = stub_->Watch(&call->context, request);
    return call;
  }

  HealthService health_;  // outlives server_ (declared first)
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
};

// "" (the whole server) is known from the start, NOT_SERVING until set.
TEST_F(HealthServiceTest, CheckAnswersTheWholeServerNotServingUntilSet) {
  EXPECT_EQ(CheckText(""), "NOT_SERVING");
  health_.SetServingStatus(true);
  EXPECT_EQ(CheckText(""), "SERVING");
}

TEST_F(HealthServiceTest, CheckAnswersAKnownNameWithItsStatus) {
  health_.SetServingStatus(kData, true);
  EXPECT_EQ(CheckText(kData), "SERVING");
  health_.SetServingStatus(kData, false);
  EXPECT_EQ(CheckText(kData), "NOT_SERVING");
  EXPECT_EQ(CheckText(""), "NOT_SERVING");  // names are independent
}

TEST_F(HealthServiceTest, CheckOfAnUnknownNameIsNotFoundAndNamesIt) {
  ServingStatus status;
  grpc::Status result = Check("no.such.Service", &status);
  EXPECT_EQ(result.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(result.error_message().find("no.such.Service"), std::string::npos)
      << result.error_message();
}

TEST_F(HealthServiceTest, SetServingStatusWithoutANameSetsEveryKnownName) {
  health_.SetServingStatus(kData, true);
  health_.SetServingStatus("other", true);
  health_.SetServingStatus(false);
  EXPECT_EQ(CheckText(""), "NOT_SERVING");
  EXPECT_EQ(CheckText(kData), "NOT_SERVING");
  EXPECT_EQ(CheckText("other"), "NOT_SERVING");
  health_.SetServingStatus(true);
  EXPECT_EQ(CheckText(""), "SERVING");
  EXPECT_EQ(CheckText(kData), "SERVING");
  // It makes no name known.
  EXPECT_EQ(CheckText("never.set"),
            absl::StrCat("code ", grpc::StatusCode::NOT_FOUND));
}

TEST_F(HealthServiceTest, ShutdownIsNotServingForGood) {
  health_.SetServingStatus(true);
  health_.SetServingStatus(kData, true);
  health_.Shutdown();
  EXPECT_EQ(CheckText(""), "NOT_SERVING");
  EXPECT_EQ(CheckText(kData), "NOT_SERVING");
  health_.SetServingStatus(true);
  health_.SetServingStatus(kData, true);
  health_.SetServingStatus("new.after.Shutdown", true);
  health_.Shutdown();  // a second time changes nothing
  EXPECT_EQ(CheckText(""), "NOT_SERVING");
  EXPECT_EQ(CheckText(kData), "NOT_SERVING");
  EXPECT_EQ(CheckText("new.after.Shutdown"), "NOT_SERVING");
}

// gRPC's limit: a hostile Watch cannot park a huge key in the service.
TEST_F(HealthServiceTest, AServiceNameOver200BytesIsInvalid) {
  const std::string long_name(201, 'x');
  EXPECT_EQ(CheckText(long_name),
            absl::StrCat("code ", grpc::StatusCode::INVALID_ARGUMENT));
  auto watch = Watch(long_name);
  EXPECT_EQ(watch->Next(), std::nullopt);
  EXPECT_EQ(watch->reader->Finish().error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CheckText(std::string(200, 'x')),
            absl::StrCat("code ", grpc::StatusCode::NOT_FOUND));
}

TEST_F(HealthServiceTest, WatchSendsTheCurrentStatusAtOnceThenEachChange) {
  health_.SetServingStatus(kData, true);
  auto watch = Watch(kData);
  EXPECT_EQ(watch->Next(), kServing);
  health_.SetServingStatus(kData, false);
  EXPECT_EQ(watch->Next(), kNotServing);
  health_.SetServingStatus("other", true);  // not this stream's name
  health_.SetServingStatus(kData, false);   // no change: nothing is sent
  health_.SetServingStatus(true);           // every known name, kData too
  EXPECT_EQ(watch->Next(), kServing);
  EXPECT_EQ(watch->Cancel().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(HealthServiceTest, WatchOfAnUnknownNameIsServiceUnknownUntilItIsSet) {
  auto watch = Watch("later.Service");
  EXPECT_EQ(watch->Next(), kUnknown);
  health_.SetServingStatus(true);  // "every known name": not this one yet
  health_.SetServingStatus("later.Service", true);
  EXPECT_EQ(watch->Next(), kServing);
  EXPECT_EQ(watch->Cancel().error_code(), grpc::StatusCode::CANCELLED);
}

// Many threads change the status at once; a watcher reads until the final
// status and then until nothing more comes: the last message read is the
// final status, and no status is ever written twice in a row.
TEST_F(HealthServiceTest, RapidChangesEndInTheFinalStatus) {
  health_.SetServingStatus(kData, true);
  AsyncWatch watch(*stub_, kData);
  ASSERT_EQ(watch.NextWithin(std::chrono::seconds(10)), kServing);
  std::vector<std::thread> setters;
  for (int t = 0; t < 4; ++t) {
    setters.emplace_back([this, t] {
      for (int i = 0; i < 500; ++i) {
        health_.SetServingStatus(kData, (i + t) % 2 == 0);
      }
    });
  }
  for (std::thread& setter : setters) setter.join();
  health_.SetServingStatus(kData, true);
  health_.SetServingStatus(kData, false);  // the final status
  std::vector<ServingStatus> read = {kServing};
  // Until the final status (a stream that never gets there fails at the
  // deadline), then until 300 ms pass with nothing more: a stale status
  // written after the final one would show here.
  bool final_seen = false;
  while (true) {
    std::optional<ServingStatus> next = watch.NextWithin(
        final_seen ? std::chrono::milliseconds(300) : std::chrono::seconds(10));
    if (!next.has_value()) break;
    EXPECT_NE(*next, read.back()) << "the same status written twice in a row";
    read.push_back(*next);
    if (*next == kNotServing) final_seen = true;
  }
  EXPECT_FALSE(watch.ended());
  EXPECT_EQ(read.back(), kNotServing) << read.size() << " messages read";
  // The stream is at rest: the next change is the next message.
  health_.SetServingStatus(kData, true);
  EXPECT_EQ(watch.NextWithin(std::chrono::seconds(10)), kServing);
}

TEST_F(HealthServiceTest, ShutdownTellsAnOpenWatchNotServing) {
  health_.SetServingStatus(true);
  auto whole = Watch("");
  auto unknown = Watch("never.set");
  EXPECT_EQ(whole->Next(), kServing);
  EXPECT_EQ(unknown->Next(), kUnknown);
  health_.Shutdown();
  EXPECT_EQ(whole->Next(), kNotServing);
  EXPECT_EQ(unknown->Next(), kNotServing);
  health_.SetServingStatus(true);  // ignored: no message follows
  // A watch opened after Shutdown hears NOT_SERVING too.
  auto late = Watch("");
  EXPECT_EQ(late->Next(), kNotServing);
  // The streams stay open until the client cancels them.
  EXPECT_EQ(whole->Cancel().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(unknown->Cancel().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(late->Cancel().error_code(), grpc::StatusCode::CANCELLED);
}

// The cancelled watch's reactor reaches OnDone (else the server's Shutdown
// would wait out its deadline and ~HealthService abort), and the service
// still serves afterwards.
TEST_F(HealthServiceTest, ClientCancelEndsTheWatchAndTheServerShutsDown) {
  for (int i = 0; i < 20; ++i) {
    health_.SetServingStatus(kData, true);
    auto watch = Watch(kData);
    EXPECT_EQ(watch->Next(), kServing);
    health_.SetServingStatus(kData, false);  // maybe a write in flight
    EXPECT_EQ(watch->Cancel().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_EQ(CheckText(kData), "NOT_SERVING");
  auto watch = Watch(kData);
  EXPECT_EQ(watch->Next(), kNotServing);
  EXPECT_EQ(watch->Cancel().error_code(), grpc::StatusCode::CANCELLED);
  const auto start = std::chrono::steady_clock::now();
  ShutdownServer();
  // Not a timing claim: a call still open would hold Shutdown to its
  // 10-second deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  server_.reset();
}

// Plays gRPC's part for one Watch reactor, on the test's thread: records
// each Write and completes it only when the test says; OnDone when the test
// ends the call, which it may only do after Finish with no write in flight.
class FakeWriter final
    : public grpc::ServerCallbackWriter<HealthCheckResponse> {
 public:
  explicit FakeWriter(grpc::ServerWriteReactor<HealthCheckResponse>* reactor)
      : reactor_(reactor) {
    BindReactor(reactor);  // replays what the reactor started before
  }

  // The test's side.
  void CompleteWrite(bool ok) {
    ASSERT_TRUE(write_pending_) << "no write to complete";
    write_pending_ = false;
    reactor_->OnWriteDone(ok);
  }
  void Cancel() { reactor_->OnCancel(); }
  void End() {
    ASSERT_TRUE(finished_) << "OnDone before Finish";
    ASSERT_FALSE(write_pending_) << "OnDone with a write in flight";
    reactor_->OnDone();  // deletes it
    reactor_ = nullptr;
  }
  const std::vector<ServingStatus>& written() const { return written_; }
  bool write_pending() const { return write_pending_; }
  bool finished() const { return finished_; }
  const grpc::Status& status() const { return status_; }

  // gRPC's side, called by the reactor.
  void Finish(grpc::Status s) override {
    EXPECT_FALSE(finished_) << "Finish called twice";
    EXPECT_FALSE(write_pending_) << "Finish with a write in flight";
    finished_ = true;
    status_ = std::move(s);
  }
  void SendInitialMetadata() override {}
  void Write(const HealthCheckResponse* message, grpc::WriteOptions) override {
    EXPECT_FALSE(write_pending_) << "a second Write while one is pending";
    EXPECT_FALSE(finished_) << "Write after Finish";
    written_.push_back(message->status());
    write_pending_ = true;
  }
  void WriteAndFinish(const HealthCheckResponse*, grpc::WriteOptions,
                      grpc::Status) override {
    ADD_FAILURE() << "Watch never ends on its own";
  }

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}

  grpc::ServerWriteReactor<HealthCheckResponse>* reactor_;
  std::vector<ServingStatus> written_;
  bool write_pending_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

class HealthWatchReactorTest : public ::testing::Test {
 protected:
  std::unique_ptr<FakeWriter> StartWatch(const std::string& name) {
    request_.set_service(name);
    return std::make_unique<FakeWriter>(health_.Watch(nullptr, &request_));
  }

  HealthService health_;
  HealthCheckRequest request_;  // lives until each reactor's OnDone
};

// Changes while a write is in flight are not queued: when it completes,
// only the latest status is written, and none if it equals the last sent.
TEST_F(HealthWatchReactorTest, OneWriteInFlightThenOnlyTheLatest) {
  health_.SetServingStatus(kData, true);
  auto stream = StartWatch(kData);
  EXPECT_EQ(stream->written(), std::vector<ServingStatus>{kServing});
  for (int i = 0; i < 101; ++i) health_.SetServingStatus(kData, i % 2 == 1);
  EXPECT_EQ(stream->written().size(), 1u);  // still in flight
  stream->CompleteWrite(true);
  EXPECT_EQ(stream->written(),
            (std::vector<ServingStatus>{kServing, kNotServing}));
  // Away and back while in flight: nothing more to write.
  health_.SetServingStatus(kData, true);
  health_.SetServingStatus(kData, false);
  stream->CompleteWrite(true);
  EXPECT_FALSE(stream->write_pending());
  // With nothing in flight, a change is written at once.
  health_.SetServingStatus(kData, true);
  EXPECT_EQ(stream->written(),
            (std::vector<ServingStatus>{kServing, kNotServing, kServing}));
  stream->CompleteWrite(true);
  health_.SetServingStatus("other", false);  // another name: no write
  EXPECT_FALSE(stream->write_pending());
  stream->Cancel();
  EXPECT_TRUE(stream->finished());
  EXPECT_EQ(stream->status().error_code(), grpc::StatusCode::CANCELLED);
  stream->End();
  health_.SetServingStatus(kData, false);  // the ended watch is gone
}

// OnCancel with a write in flight: Finish waits for that write's
// OnWriteDone, and no change starts another write meanwhile.
TEST_F(HealthWatchReactorTest, CancelWithAWriteInFlightFinishesAfterIt) {
  auto stream = StartWatch("");
  EXPECT_EQ(stream->written(), std::vector<ServingStatus>{kNotServing});
  stream->Cancel();
  EXPECT_FALSE(stream->finished());
  health_.SetServingStatus(true);
  stream->CompleteWrite(false);
  EXPECT_TRUE(stream->finished());
  EXPECT_EQ(stream->status().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(stream->written().size(), 1u);
  stream->End();
}

// A failed write (the stream broke) finishes the call; gRPC's OnCancel that
// may follow does not finish it twice.
TEST_F(HealthWatchReactorTest, AFailedWriteFinishesOnce) {
  auto stream = StartWatch("unknown.Service");
  EXPECT_EQ(stream->written(), std::vector<ServingStatus>{kUnknown});
  stream->CompleteWrite(false);
  EXPECT_TRUE(stream->finished());
  stream->Cancel();
  health_.Shutdown();  // no write after Finish
  EXPECT_EQ(stream->written().size(), 1u);
  stream->End();
}

// Shutdown reaches a watch whose write is in flight once that completes.
TEST_F(HealthWatchReactorTest, ShutdownDuringAWriteIsWrittenAfterIt) {
  health_.SetServingStatus(true);
  auto stream = StartWatch("");
  health_.Shutdown();
  stream->CompleteWrite(true);
  EXPECT_EQ(stream->written(),
            (std::vector<ServingStatus>{kServing, kNotServing}));
  stream->CompleteWrite(true);
  stream->Cancel();
  EXPECT_TRUE(stream->finished());
  stream->End();
}

TEST_F(HealthWatchReactorTest, CheckIsFinishedWhenReturned) {
  // Check's reactor called Finish before it was bound; binding replays it.
  class FakeUnary final : public grpc::ServerCallbackUnary {
   public:
    explicit FakeUnary(grpc::ServerUnaryReactor* reactor) : reactor_(reactor) {
      BindReactor(reactor);
    }
    void Finish(grpc::Status s) override {
      finished_ = true;
      status_ = std::move(s);
    }
    void SendInitialMetadata() override {}
    void End() { reactor_->OnDone(); }
    bool finished_ = false;
    grpc::Status status_;

   private:
    grpc::internal::ServerReactor* reactor() override { return reactor_; }
    void CallOnDone() override {}
    grpc::ServerUnaryReactor* reactor_;
  };
  HealthCheckResponse response;
  request_.set_service("");
  FakeUnary call(health_.Check(nullptr, &request_, &response));
  EXPECT_TRUE(call.finished_);
  EXPECT_TRUE(call.status_.ok());
  EXPECT_EQ(response.status(), kNotServing);
  call.End();
}

}  // namespace
}  // namespace rowgate::service
