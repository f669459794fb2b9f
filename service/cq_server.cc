#include "service/cq_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/batch_get_reactors.h"
#include "service/log.h"

namespace rowgate::service {
namespace {

using Raw = grpc::ByteBuffer;

// A call waiting on its completion queue. Each operation it starts is given
// the address of one of its Events as the tag, so the poller knows whose
// event it is and which.
class CqCall {
 public:
  enum Kind { kStarted, kRead, kWritten, kMetadataSent, kFinished, kDone };
  struct Event {
    CqCall* call;
    Kind kind;
  };
  virtual ~CqCall() = default;
  virtual void OnEvent(Kind kind, bool ok) = 0;
};

// The part of a call's life common to both methods: every event that has
// to arrive before the reactor's OnDone (the context's "done" notification,
// Finish's, one per Read/Write/metadata in flight) holds a reference, as
// does each thread while it starts an operation; the last one out runs
// OnDone (usually on the CQ thread) and deletes.
template <typename CallbackCall>
class CqCallBase : public CallbackCall, public CqCall {
 protected:
  CqCallBase(CqServer& server, grpc::ServerCompletionQueue* cq)
      : server_(server), cq_(cq) {
    for (int kind = 0; kind <= kDone; ++kind) {
      events_[kind] = Event{this, static_cast<Kind>(kind)};
    }
  }

  Event* EventFor(Kind kind) { return &events_[kind]; }
  // Starts an operation whose event must arrive before OnDone, from any
  // thread. The reference taken for the starting thread is dropped when
  // `start` has returned, so whoever deletes the call (the last one out)
  // is ordered after everything the starter touched, by this counter alone
  // (ThreadSanitizer cannot see the synchronization inside gRPC).
  template <typename Start>
  void StartOp(Kind kind, Start start) {
    refs_.fetch_add(2, std::memory_order_relaxed);
    start(EventFor(kind));
    Unref();
  }
  // Finish (or WriteAndFinish) was started: drops the reference that kept
  // the call until then.
  void Finished() { Unref(); }
  // The event of an operation started with StartOp arrived.
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      reactor_->OnDone();
      server_.CallEnded();
      delete this;
    }
  }
  // The "done" notification: the call ended, finished or cancelled. It
  // arrives on this call's CQ thread, after the handler returned, as the
  // callback API's OnCancel does.
  void OnDoneNotified() {
    if (context_.IsCancelled()) reactor_->OnCancel();
    Unref();
  }
  // Before the call is requested: the notification is armed with it.
  void ArmDoneNotification() { context_.AsyncNotifyWhenDone(EventFor(kDone)); }

  CqServer& server_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  grpc::internal::ServerReactor* reactor_ = nullptr;

 private:
  // gRPC's own accounting (ServerCallbackCall) is not used: this class
  // counts its events itself, and gRPC never calls these.
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}

  Event events_[kDone + 1];
  // The done notification's reference and Finish's (held until Finish has
  // been started, so a call whose done notification comes first, e.g. one
  // cancelled while its lookup is still out, lives until it is answered, as
  // on the callback API); StartOp adds the others.
  std::atomic<int> refs_{2};
};

// A unary BatchGet: the adapter a BatchGet reactor finishes through.
class UnaryCall final : public CqCallBase<grpc::ServerCallbackUnary> {
 public:
  UnaryCall(CqServer& server, grpc::ServerCompletionQueue* cq)
      : CqCallBase(server, cq), responder_(&context_) {}

  void Request() {
    ArmDoneNotification();
    server_.service().RequestBatchGet(&context_, &request_, &responder_, cq_,
                                      cq_, EventFor(kStarted));
  }

  void OnEvent(Kind kind, bool ok) override {
    switch (kind) {
      case kStarted:
        return OnStarted(ok);
      case kDone:
        return OnDoneNotified();
      default:  // kFinished, kMetadataSent
        return Unref();
    }
  }

  void Finish(grpc::Status status) override {
    StartOp(kFinished, [&](Event* event) {
      if (status.ok()) {
        responder_.Finish(response_, status, event);
      } else {
        responder_.FinishWithError(status, event);
      }
    });
    Finished();
  }
  void SendInitialMetadata() override {
    StartOp(kMetadataSent,
            [&](Event* event) { responder_.SendInitialMetadata(event); });
  }

 private:
  void OnStarted(bool ok) {
    if (!ok) {  // the server is shutting down: no call, no done event
      delete this;
      return;
    }
    // The next call of this method on this queue.
    (new UnaryCall(server_, cq_))->Request();
    server_.CallStarted();
    auto* reactor = NewBatchGetReactor(server_.service().impl(), &context_,
                                       &request_, &response_);
    reactor_ = reactor;
    BindReactor(reactor);
  }

  Raw request_;
  Raw response_;
  grpc::ServerAsyncResponseWriter<Raw> responder_;
};

// A StreamBatchGet: the adapter its reactor reads, writes and finishes
// through.
class StreamCall final
    : public CqCallBase<grpc::ServerCallbackReaderWriter<Raw, Raw>> {
 public:
  StreamCall(CqServer& server, grpc::ServerCompletionQueue* cq)
      : CqCallBase(server, cq), stream_(&context_) {}

  void Request() {
    ArmDoneNotification();
    server_.service().RequestStreamBatchGet(&context_, &stream_, cq_, cq_,
                                            EventFor(kStarted));
  }

  void OnEvent(Kind kind, bool ok) override {
    switch (kind) {
      case kStarted:
        return OnStarted(ok);
      case kRead:
        bidi()->OnReadDone(ok);
        return Unref();
      case kWritten:
        bidi()->OnWriteDone(ok);
        return Unref();
      case kDone:
        return OnDoneNotified();
      default:  // kFinished, kMetadataSent
        return Unref();
    }
  }

  // The reactor keeps at most one read and one write in flight, as on the
  // callback API; the async API asks the same.
  void Read(Raw* message) override {
    StartOp(kRead, [&](Event* event) { stream_.Read(message, event); });
  }
  void Write(const Raw* message, grpc::WriteOptions options) override {
    StartOp(kWritten,
            [&](Event* event) { stream_.Write(*message, options, event); });
  }
  void WriteAndFinish(const Raw* message, grpc::WriteOptions options,
                      grpc::Status status) override {
    StartOp(kFinished, [&](Event* event) {
      stream_.WriteAndFinish(*message, options, status, event);
    });
    Finished();
  }
  void Finish(grpc::Status status) override {
    StartOp(kFinished, [&](Event* event) { stream_.Finish(status, event); });
    Finished();
  }
  void SendInitialMetadata() override {
    StartOp(kMetadataSent,
            [&](Event* event) { stream_.SendInitialMetadata(event); });
  }

 private:
  grpc::ServerBidiReactor<Raw, Raw>* bidi() {
    return static_cast<grpc::ServerBidiReactor<Raw, Raw>*>(reactor_);
  }

  void OnStarted(bool ok) {
    if (!ok) {
      delete this;
      return;
    }
    (new StreamCall(server_, cq_))->Request();
    server_.CallStarted();
    auto* reactor =
        NewStreamBatchGetReactor(server_.service().impl(), &context_);
    reactor_ = reactor;
    // Replays the read the reactor started in its constructor.
    BindReactor(reactor);
  }

  grpc::ServerAsyncReaderWriter<Raw, Raw> stream_;
};

}  // namespace

CqServer::CqServer(Options options, DataServiceImpl& impl)
    : options_(options), service_(impl) {}

CqServer::~CqServer() { Shutdown(); }

void CqServer::AddTo(grpc::ServerBuilder& builder) {
  builder.RegisterService(&service_);
  for (int i = 0; i < options_.threads; ++i) {
    queues_.push_back(builder.AddCompletionQueue());
  }
}

void CqServer::Start() {
  started_ = true;
  for (auto& queue : queues_) {
    for (int i = 0; i < options_.requests_ahead; ++i) {
      (new UnaryCall(*this, queue.get()))->Request();
      (new StreamCall(*this, queue.get()))->Request();
    }
    threads_.emplace_back([this, cq = queue.get()] { Poll(cq); });
  }
}

void CqServer::Poll(grpc::ServerCompletionQueue* cq) {
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
    auto* event = static_cast<CqCall::Event*>(tag);
    event->call->OnEvent(event->kind, ok);
  }
}

void CqServer::CallEnded() {
  if (live_calls_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    storage::MutexLock lock(&mu_);
    all_ended_.SignalAll();
  }
}

void CqServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (started_) {
    // grpc::Server::Shutdown has cancelled whatever was left, and each call
    // cancelled ends as soon as its reactor has answered (at once: the
    // loader answers a cancelled lookup inline).
    storage::MutexLock lock(&mu_);
    while (live_calls_.load(std::memory_order_acquire) > 0) {
      if (!all_ended_.WaitWithDeadline(&mu_, absl::Now() + absl::Seconds(5))) {
        Log(LogLevel::kWarning, "waiting for BatchGet calls to end",
            {{"calls", absl::StrCat(live_calls_.load())}});
      }
    }
  }
  // Requests not matched by a call come back with ok=false, and are
  // deleted, while the queues drain.
  for (auto& queue : queues_) queue->Shutdown();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace rowgate::service
