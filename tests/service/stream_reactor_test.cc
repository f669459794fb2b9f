// The StreamBatchGet reactor driven by a fake gRPC stream, for
// ThreadSanitizer: Debian's gRPC synchronizes with an absl::Mutex TSAN
// cannot see, so a real server drowns any finding in false reports (the
// same scenarios over a real server are in stream_batch_get_test.cc). The
// fake plays gRPC's part with std::mutex: it delivers OnReadDone and
// OnWriteDone on a thread of its own, OnCancel on another (concurrently
// with the other reactions, as gRPC may), and OnDone only once Finish was
// called and no reaction is running or pending, as gRPC does. The loader's
// executor is the gated fake, so lookups are in flight for certain.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "loader/batch_loader.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "service/data_service.h"
#include "service/memory_backend.h"
#include "service/raw_call.h"
#include "tests/service/gated_executor.h"

namespace rowgate::service {
namespace {

using Request = v1::StreamBatchGetRequest;
using Response = v1::StreamBatchGetResponse;

// The service is served raw (service/raw_call.h): messages are bytes.
using Raw = grpc::ByteBuffer;

class FakeStream final : public grpc::ServerCallbackReaderWriter<Raw, Raw> {
 public:
  explicit FakeStream(grpc::ServerBidiReactor<Raw, Raw>* reactor)
      : reactor_(reactor) {
    BindReactor(reactor);
    io_thread_ = std::thread([this] { DeliverIo(); });
  }
  ~FakeStream() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    changed_.notify_all();
    io_thread_.join();
    if (cancel_thread_.joinable()) cancel_thread_.join();
  }

  // The client's side.
  void ClientWrite(const Request& message) {
    Raw raw;
    SerializeRaw(message, &raw);
    std::lock_guard<std::mutex> lock(mu_);
    incoming_.push_back(std::move(raw));
    changed_.notify_all();
  }
  void ClientWritesDone() {
    std::lock_guard<std::mutex> lock(mu_);
    half_closed_ = true;
    changed_.notify_all();
  }
  // Cancels the call: OnCancel runs on a thread of its own, now.
  void ClientCancel() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      cancel_running_ = true;
      changed_.notify_all();
    }
    cancel_thread_ = std::thread([this] {
      reactor_->OnCancel();
      std::lock_guard<std::mutex> lock(mu_);
      cancel_running_ = false;
      changed_.notify_all();
    });
  }
  void AwaitCancelReturned() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return cancelled_ && !cancel_running_; });
  }
  // Blocks until `n` messages were read and their OnReadDone returned.
  void AwaitMessagesRead(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return messages_read_ >= n; });
  }
  // Blocks until OnDone has returned; the status the reactor finished with.
  grpc::Status AwaitDone() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return done_; });
    return status_;
  }
  void AwaitAnswers(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return written_.size() >= n; });
  }
  std::vector<Response> answers() {
    std::lock_guard<std::mutex> lock(mu_);
    return written_;
  }

  // gRPC's side, called by the reactor.
  void Finish(grpc::Status s) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(finished_) << "Finish called twice";
    finished_ = true;
    status_ = std::move(s);
    changed_.notify_all();
  }
  void SendInitialMetadata() override {}
  void Read(Raw* message) override {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(read_into_, nullptr) << "a second Read while one is pending";
    EXPECT_FALSE(finished_) << "Read after Finish";
    read_into_ = message;
    changed_.notify_all();
  }
  void Write(const Raw* message, grpc::WriteOptions) override {
    Response answer;
    EXPECT_TRUE(ParseRaw(*message, &answer).ok());
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_FALSE(write_pending_) << "a second Write while one is pending";
    EXPECT_FALSE(finished_) << "Write after Finish";
    written_.push_back(std::move(answer));
    write_pending_ = true;
    changed_.notify_all();
  }
  void WriteAndFinish(const Raw* message, grpc::WriteOptions options,
                      grpc::Status s) override {
    Write(message, options);
    Finish(std::move(s));
  }

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}

  // A read completes when a message came, or (ok=false) at half-close,
  // cancellation or Finish; a write completes at once (ok=false once
  // cancelled); OnDone comes when Finish was called and nothing else is
  // running or pending. Never touches the reactor after OnDone.
  void DeliverIo() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      if (write_pending_) {
        write_pending_ = false;
        const bool ok = !cancelled_;
        lock.unlock();
        reactor_->OnWriteDone(ok);
        lock.lock();
      } else if (read_into_ != nullptr && (!incoming_.empty() || half_closed_ ||
                                           cancelled_ || finished_)) {
        Raw* target = std::exchange(read_into_, nullptr);
        bool ok = false;
        if (!cancelled_ && !finished_ && !incoming_.empty()) {
          *target = std::move(incoming_.front());
          incoming_.pop_front();
          ok = true;
        }
        lock.unlock();
        reactor_->OnReadDone(ok);
        lock.lock();
        if (ok) ++messages_read_;
        changed_.notify_all();
      } else if (finished_ && !cancel_running_) {
        lock.unlock();
        reactor_->OnDone();  // may delete the reactor
        lock.lock();
        done_ = true;
        changed_.notify_all();
      } else if (stopping_) {
        return;
      } else {
        changed_.wait(lock);
      }
    }
  }

  grpc::ServerBidiReactor<Raw, Raw>* const reactor_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Raw> incoming_;
  std::vector<Response> written_;
  Raw* read_into_ = nullptr;
  bool write_pending_ = false;
  int messages_read_ = 0;
  bool half_closed_ = false;
  bool cancelled_ = false;
  bool cancel_running_ = false;
  bool finished_ = false;
  bool done_ = false;
  bool stopping_ = false;
  grpc::Status status_;
  std::thread io_thread_;
  std::thread cancel_thread_;
};

class StreamBatchGetReactorTest : public ::testing::Test {
 protected:
  StreamBatchGetReactorTest()
      : loader_(std::make_unique<loader::Loader>(loader::Loader::Options{},
                                                 executor_)),
        service_(std::make_unique<DataServiceImpl>(DataServiceOptions{},
                                                   MemoryBackendCatalog(),
                                                   loader_.get(), nullptr)) {}
  // Answers still being computed are delivered first (deleting reactors
  // that outlived OnDone), then the loader and the service they used go.
  ~StreamBatchGetReactorTest() override {
    executor_.Shutdown();
    loader_.reset();
    service_.reset();
  }

  std::unique_ptr<FakeStream> Open(grpc::CallbackServerContext* context) {
    return std::make_unique<FakeStream>(service_->StreamBatchGet(context));
  }

  static Request Lookup(uint64_t tag, std::vector<int64_t> ids) {
    Request message;
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
};

// OnCancel runs while OnReadDone is still starting a lookup (held inside the
// loader's Load), so OnCancel finds no ticket to cancel. OnReadDone, on
// storing the ticket, sees the stream broken and cancels the lookup itself:
// its query is not left running for nobody (it was, until that check). The
// stream finishes CANCELLED with nothing written, and OnDone deletes the
// reactor once the cancelled answer is in (a leak under ASan otherwise).
TEST_F(StreamBatchGetReactorTest, CancelDuringAStartingLookupCancelsIt) {
  executor_.HoldRuns(true);
  grpc::CallbackServerContext context;
  std::unique_ptr<FakeStream> stream = Open(&context);
  stream->ClientWrite(Lookup(1, {7}));
  executor_.AwaitHeldRuns(1);  // OnReadDone is inside Load now

  stream->ClientCancel();
  stream->AwaitCancelReturned();
  executor_.HoldRuns(false);  // OnReadDone returns; then OnDone
  EXPECT_EQ(stream->AwaitDone().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(loader_->Stats().cancelled, 1u);
  executor_.SetOpen(true);
  executor_.Shutdown();
  EXPECT_TRUE(stream->answers().empty());
}

// Cancelled with one lookup in its query and three waiting behind it: each
// is cancelled in the loader at once (OnCancel), nothing more is written,
// and OnDone deletes the reactor; the fetch returning later answers nobody.
TEST_F(StreamBatchGetReactorTest, CancelWithLookupsInFlightCancelsThemAll) {
  grpc::CallbackServerContext context;
  std::unique_ptr<FakeStream> stream = Open(&context);
  stream->ClientWrite(Lookup(1, {1}));
  executor_.AwaitFetches(1);
  for (uint64_t tag = 2; tag <= 4; ++tag) {
    stream->ClientWrite(Lookup(tag, {static_cast<int64_t>(tag)}));
  }
  stream->AwaitMessagesRead(4);
  stream->ClientCancel();
  EXPECT_EQ(stream->AwaitDone().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(loader_->Stats().cancelled, 4u);
  executor_.SetOpen(true);
  executor_.Shutdown();
  EXPECT_EQ(executor_.fetches().size(), 1u);
  EXPECT_TRUE(stream->answers().empty());
}

// Half-closed with all answers pending: every answer is written, with its
// tag, while the workers deliver them concurrently; then OK.
TEST_F(StreamBatchGetReactorTest, HalfCloseWithAnswersPendingWritesAllThenOk) {
  grpc::CallbackServerContext context;
  std::unique_ptr<FakeStream> stream = Open(&context);
  stream->ClientWrite(Lookup(10, {1, 2}));
  executor_.AwaitFetches(1);
  for (uint64_t tag = 11; tag <= 20; ++tag) {
    stream->ClientWrite(Lookup(tag, {static_cast<int64_t>(tag), 999}));
  }
  stream->ClientWritesDone();
  stream->AwaitMessagesRead(11);
  executor_.SetOpen(true);
  EXPECT_TRUE(stream->AwaitDone().ok());
  std::map<uint64_t, Response> by_tag;
  for (const Response& answer : stream->answers()) {
    ASSERT_FALSE(answer.has_error()) << answer.error().message();
    by_tag[answer.tag()] = answer;
  }
  ASSERT_EQ(by_tag.size(), 11u);
  EXPECT_TRUE(by_tag[10].response().results(1).found());
  for (uint64_t tag = 11; tag <= 20; ++tag) {
    ASSERT_EQ(by_tag[tag].response().results_size(), 2);
    EXPECT_TRUE(by_tag[tag].response().results(0).found());
    EXPECT_FALSE(by_tag[tag].response().results(1).found());
  }
}

// Many streams cancelled while the workers answer them: OnCancel, the
// answers, OnWriteDone and OnDone race; each reactor is deleted exactly once
// (ASan) and nothing races (TSAN).
TEST_F(StreamBatchGetReactorTest, StreamsCancelledWhileAnswersArrive) {
  executor_.SetOpen(true);
  for (int s = 0; s < 30; ++s) {
    grpc::CallbackServerContext context;
    std::unique_ptr<FakeStream> stream = Open(&context);
    for (uint64_t tag = 0; tag < 6; ++tag) {
      stream->ClientWrite(Lookup(tag, {static_cast<int64_t>(tag + s)}));
    }
    if (s % 2 == 0) stream->AwaitAnswers(1);
    stream->ClientCancel();
    // A read failing on the cancelled call may come before OnCancel: with
    // every answer written, the reactor then finishes OK (the client, gone,
    // never sees it).
    const grpc::StatusCode code = stream->AwaitDone().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::CANCELLED ||
                code == grpc::StatusCode::OK)
        << code;
  }
}

}  // namespace
}  // namespace rowgate::service
