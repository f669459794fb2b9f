#include "service/cq_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/batch_get_reactors.h"
#include "service/health_service.h"
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

// The part of a call's life common to every kind of method: every event
// that has to arrive before the reactor's OnDone (the context's "done"
// notification, Finish's, one per Read/Write/metadata in flight) holds a
// reference, as does each thread while it starts an operation; the last one
// out runs OnDone (usually on the CQ thread) and deletes.
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
  // The request was matched with a call (ok) or the server is shutting down
  // (!ok: no call, no done notification). True when the handler is to run.
  bool Started(bool ok) {
    if (!ok) {
      delete this;
      return false;
    }
    server_.CallStarted();
    return true;
  }

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

}  // namespace

// One method of a service: how many of its calls are requested ahead on each
// queue, and how one more is.
class CqMethod {
 public:
  explicit CqMethod(int ahead) : ahead_(ahead) {}
  virtual ~CqMethod() = default;
  int ahead() const { return ahead_; }
  // Requests one more call of this method on `cq`.
  virtual void RequestOne(CqServer& server,
                          grpc::ServerCompletionQueue* cq) const = 0;

 private:
  const int ahead_;
};

namespace {

// A method whose calls are `Call<Request, Response>`: `request` requests one
// (a generated Request<Method> function, with `RequestFn`'s signature) and
// `start` makes its reactor (`StartFn`'s signature).
template <template <typename, typename> class Call, typename Request,
          typename Response, typename RequestFn, typename StartFn>
struct CallMethod final : CqMethod {
  template <typename RequestF, typename StartF>
  CallMethod(int ahead, RequestF request_fn, StartF start_fn)
      : CqMethod(ahead),
        request(std::move(request_fn)),
        start(std::move(start_fn)) {}
  void RequestOne(CqServer& server,
                  grpc::ServerCompletionQueue* cq) const override {
    (new Call<Request, Response>(server, cq, *this))->RequestCall();
  }

  std::function<RequestFn> request;
  std::function<StartFn> start;
};

template <typename Request, typename Response>
class UnaryCall;
template <typename Request, typename Response>
class ServerStreamCall;
template <typename Request, typename Response>
class BidiStreamCall;

template <typename Request, typename Response>
using UnaryMethod =
    CallMethod<UnaryCall, Request, Response,
               void(grpc::ServerContext*, Request*,
                    grpc::ServerAsyncResponseWriter<Response>*,
                    grpc::ServerCompletionQueue*, void*),
               grpc::ServerUnaryReactor*(grpc::ServerContextBase*,
                                         const Request*, Response*)>;
// Health's Watch.
template <typename Request, typename Response>
using ServerStreamMethod =
    CallMethod<ServerStreamCall, Request, Response,
               void(grpc::ServerContext*, Request*,
                    grpc::ServerAsyncWriter<Response>*,
                    grpc::ServerCompletionQueue*, void*),
               grpc::ServerWriteReactor<Response>*(grpc::ServerContextBase*,
                                                   const Request*)>;
// StreamBatchGet, reflection.
template <typename Request, typename Response>
using BidiStreamMethod =
    CallMethod<BidiStreamCall, Request, Response,
               void(grpc::ServerContext*,
                    grpc::ServerAsyncReaderWriter<Response, Request>*,
                    grpc::ServerCompletionQueue*, void*),
               grpc::ServerBidiReactor<Request, Response>*(
                   grpc::ServerContextBase*)>;

// A unary call: the adapter its reactor finishes through.
template <typename Request, typename Response>
class UnaryCall final : public CqCallBase<grpc::ServerCallbackUnary> {
 public:
  using Method = UnaryMethod<Request, Response>;
  UnaryCall(CqServer& server, grpc::ServerCompletionQueue* cq,
            const Method& method)
      : CqCallBase(server, cq), method_(method), responder_(&context_) {}

  void RequestCall() {
    ArmDoneNotification();
    method_.request(&context_, &request_, &responder_, cq_, EventFor(kStarted));
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
    if (!Started(ok)) return;
    // The next call of this method on this queue.
    method_.RequestOne(server_, cq_);
    grpc::ServerUnaryReactor* reactor =
        method_.start(&context_, &request_, &response_);
    reactor_ = reactor;
    BindReactor(reactor);  // replays a Finish the handler already made
  }

  const Method& method_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> responder_;
};

// What a streaming call's reactor writes and finishes through: the same on a
// server-streaming and a bidirectional call, on the async stream `stream_`
// (grpc::ServerAsyncWriter or grpc::ServerAsyncReaderWriter). The reactor
// keeps at most one write in flight, as on the callback API; the async API
// asks the same.
template <typename CallbackCall, typename AsyncStream, typename Response>
class CqStreamCallBase : public CqCallBase<CallbackCall> {
 public:
  void Write(const Response* message, grpc::WriteOptions options) override {
    this->StartOp(CqCall::kWritten, [&](CqCall::Event* event) {
      stream_.Write(*message, options, event);
    });
  }
  void WriteAndFinish(const Response* message, grpc::WriteOptions options,
                      grpc::Status status) override {
    this->StartOp(CqCall::kFinished, [&](CqCall::Event* event) {
      stream_.WriteAndFinish(*message, options, status, event);
    });
    this->Finished();
  }
  void Finish(grpc::Status status) override {
    this->StartOp(CqCall::kFinished,
                  [&](CqCall::Event* event) { stream_.Finish(status, event); });
    this->Finished();
  }
  void SendInitialMetadata() override {
    this->StartOp(CqCall::kMetadataSent, [&](CqCall::Event* event) {
      stream_.SendInitialMetadata(event);
    });
  }

 protected:
  CqStreamCallBase(CqServer& server, grpc::ServerCompletionQueue* cq)
      : CqCallBase<CallbackCall>(server, cq), stream_(&this->context_) {}

  AsyncStream stream_;
};

// A server-streaming call: the adapter its reactor writes and finishes
// through.
template <typename Request, typename Response>
class ServerStreamCall final
    : public CqStreamCallBase<grpc::ServerCallbackWriter<Response>,
                              grpc::ServerAsyncWriter<Response>, Response> {
  using Base = CqStreamCallBase<grpc::ServerCallbackWriter<Response>,
                                grpc::ServerAsyncWriter<Response>, Response>;
  using Kind = CqCall::Kind;

 public:
  using Method = ServerStreamMethod<Request, Response>;
  ServerStreamCall(CqServer& server, grpc::ServerCompletionQueue* cq,
                   const Method& method)
      : Base(server, cq), method_(method) {}

  void RequestCall() {
    this->ArmDoneNotification();
    method_.request(&this->context_, &request_, &this->stream_, this->cq_,
                    this->EventFor(CqCall::kStarted));
  }

  void OnEvent(Kind kind, bool ok) override {
    switch (kind) {
      case CqCall::kStarted:
        return OnStarted(ok);
      case CqCall::kWritten:
        writer()->OnWriteDone(ok);
        return this->Unref();
      case CqCall::kDone:
        return this->OnDoneNotified();
      default:  // kFinished, kMetadataSent
        return this->Unref();
    }
  }

 private:
  grpc::ServerWriteReactor<Response>* writer() {
    return static_cast<grpc::ServerWriteReactor<Response>*>(this->reactor_);
  }

  void OnStarted(bool ok) {
    if (!this->Started(ok)) return;
    method_.RequestOne(this->server_, this->cq_);
    grpc::ServerWriteReactor<Response>* reactor =
        method_.start(&this->context_, &request_);
    this->reactor_ = reactor;
    this->BindReactor(reactor);  // replays what the reactor already started
  }

  const Method& method_;
  Request request_;
};

// A bidirectional-streaming call: the adapter its reactor reads, writes and
// finishes through.
template <typename Request, typename Response>
class BidiStreamCall final
    : public CqStreamCallBase<
          grpc::ServerCallbackReaderWriter<Request, Response>,
          grpc::ServerAsyncReaderWriter<Response, Request>, Response> {
  using Base =
      CqStreamCallBase<grpc::ServerCallbackReaderWriter<Request, Response>,
                       grpc::ServerAsyncReaderWriter<Response, Request>,
                       Response>;
  using Kind = CqCall::Kind;

 public:
  using Method = BidiStreamMethod<Request, Response>;
  BidiStreamCall(CqServer& server, grpc::ServerCompletionQueue* cq,
                 const Method& method)
      : Base(server, cq), method_(method) {}

  void RequestCall() {
    this->ArmDoneNotification();
    method_.request(&this->context_, &this->stream_, this->cq_,
                    this->EventFor(CqCall::kStarted));
  }

  void OnEvent(Kind kind, bool ok) override {
    switch (kind) {
      case CqCall::kStarted:
        return OnStarted(ok);
      case CqCall::kRead:
        bidi()->OnReadDone(ok);
        return this->Unref();
      case CqCall::kWritten:
        bidi()->OnWriteDone(ok);
        return this->Unref();
      case CqCall::kDone:
        return this->OnDoneNotified();
      default:  // kFinished, kMetadataSent
        return this->Unref();
    }
  }

  // At most one read in flight, as on the callback API.
  void Read(Request* message) override {
    this->StartOp(CqCall::kRead, [&](CqCall::Event* event) {
      this->stream_.Read(message, event);
    });
  }

 private:
  grpc::ServerBidiReactor<Request, Response>* bidi() {
    return static_cast<grpc::ServerBidiReactor<Request, Response>*>(
        this->reactor_);
  }

  void OnStarted(bool ok) {
    if (!this->Started(ok)) return;
    method_.RequestOne(this->server_, this->cq_);
    grpc::ServerBidiReactor<Request, Response>* reactor =
        method_.start(&this->context_);
    this->reactor_ = reactor;
    // Replays the read the reactor started in its constructor.
    this->BindReactor(reactor);
  }

  const Method& method_;
};

// Requests a call of `method` of `service`, a generated async service: one
// whose client sends a single message (unary, server-streaming), or a
// bidirectional stream. The generated Request<Method> functions take the
// queue twice: where the call's own operations complete and where its
// arrival is notified. Both are the one queue here.
#define ROWGATE_REQUEST_WITH_MESSAGE(service, method)                \
  [svc = &service](grpc::ServerContext* context, auto* request,      \
                   auto* responder, grpc::ServerCompletionQueue* cq, \
                   void* tag) {                                      \
    svc->Request##method(context, request, responder, cq, cq, tag);  \
  }
#define ROWGATE_REQUEST_BIDI(service, method)                    \
  [svc = &service](grpc::ServerContext* context, auto* stream,   \
                   grpc::ServerCompletionQueue* cq, void* tag) { \
    svc->Request##method(context, stream, cq, cq, tag);          \
  }

}  // namespace

CqServer::CqServer(Options options, Handlers handlers)
    : options_(options), handlers_(handlers) {
  const int hot = options_.requests_ahead;
  const int other = options_.requests_ahead_other;
  if (DataServiceImpl* data = handlers_.data) {
    auto& svc = data_service_;
    using RawUnary = UnaryMethod<Raw, Raw>;
    methods_.push_back(std::make_unique<RawUnary>(
        hot, ROWGATE_REQUEST_WITH_MESSAGE(svc, BatchGet),
        [data](grpc::ServerContextBase* context, const Raw* in, Raw* out) {
          return NewBatchGetReactor(*data, context, in, out);
        }));
    methods_.push_back(std::make_unique<BidiStreamMethod<Raw, Raw>>(
        hot, ROWGATE_REQUEST_BIDI(svc, StreamBatchGet),
        [data](grpc::ServerContextBase* context) {
          return NewStreamBatchGetReactor(*data, context);
        }));
    // The other DataService methods: parsed, translated and handed to a
    // database worker on the CQ thread, as on the callback path.
#define ROWGATE_DATA_METHOD(method)                                       \
  methods_.push_back(std::make_unique<RawUnary>(                          \
      other, ROWGATE_REQUEST_WITH_MESSAGE(svc, method),                   \
      [data](grpc::ServerContextBase* context, const Raw* in, Raw* out) { \
        return data->Serve##method(context, in, out);                     \
      }))
    ROWGATE_DATA_METHOD(Insert);
    ROWGATE_DATA_METHOD(Update);
    ROWGATE_DATA_METHOD(Delete);
    ROWGATE_DATA_METHOD(Page);
    ROWGATE_DATA_METHOD(ListEntities);
    ROWGATE_DATA_METHOD(DescribeEntity);
    ROWGATE_DATA_METHOD(Transact);
#undef ROWGATE_DATA_METHOD
  }
  if (AdminServiceImpl* admin = handlers_.admin) {
    auto& svc = admin_service_;
#define ROWGATE_ADMIN_METHOD(method, Request, Response)                \
  methods_.push_back(std::make_unique<UnaryMethod<Request, Response>>( \
      other, ROWGATE_REQUEST_WITH_MESSAGE(svc, method),                \
      [admin](grpc::ServerContextBase* context, const Request* in,     \
              Response* out) {                                         \
        return admin->Serve##method(context, in, out);                 \
      }))
    ROWGATE_ADMIN_METHOD(GetLoaderStats, v1::GetLoaderStatsRequest,
                         v1::LoaderStats);
    ROWGATE_ADMIN_METHOD(ClearCache, v1::ClearCacheRequest,
                         v1::ClearCacheResponse);
    ROWGATE_ADMIN_METHOD(GetCacheStats, v1::GetCacheStatsRequest,
                         v1::CacheStats);
#undef ROWGATE_ADMIN_METHOD
  }
  if (HealthService* health = handlers_.health) {
    namespace hv1 = grpc::health::v1;
    auto& svc = health_service_;
    methods_.push_back(
        std::make_unique<
            UnaryMethod<hv1::HealthCheckRequest, hv1::HealthCheckResponse>>(
            other, ROWGATE_REQUEST_WITH_MESSAGE(svc, Check),
            [health](grpc::ServerContextBase* context,
                     const hv1::HealthCheckRequest* in,
                     hv1::HealthCheckResponse* out) {
              return health->Check(context, in, out);
            }));
    methods_.push_back(
        std::make_unique<ServerStreamMethod<hv1::HealthCheckRequest,
                                            hv1::HealthCheckResponse>>(
            other, ROWGATE_REQUEST_WITH_MESSAGE(svc, Watch),
            [health](grpc::ServerContextBase* context,
                     const hv1::HealthCheckRequest* in) {
              return health->Watch(context, in);
            }));
  }
  if (ReflectionServices* reflection = handlers_.reflection) {
    namespace rv1 = grpc::reflection::v1;
    namespace rv1alpha = grpc::reflection::v1alpha;
    auto& v1_svc = reflection_v1_service_;
    auto& v1alpha_svc = reflection_v1alpha_service_;
    methods_.push_back(
        std::make_unique<BidiStreamMethod<rv1::ServerReflectionRequest,
                                          rv1::ServerReflectionResponse>>(
            other, ROWGATE_REQUEST_BIDI(v1_svc, ServerReflectionInfo),
            [reflection](grpc::ServerContextBase*) {
              return reflection->NewV1Stream();
            }));
    methods_.push_back(
        std::make_unique<BidiStreamMethod<rv1alpha::ServerReflectionRequest,
                                          rv1alpha::ServerReflectionResponse>>(
            other, ROWGATE_REQUEST_BIDI(v1alpha_svc, ServerReflectionInfo),
            [reflection](grpc::ServerContextBase*) {
              return reflection->NewV1AlphaStream();
            }));
  }
}
#undef ROWGATE_REQUEST_WITH_MESSAGE
#undef ROWGATE_REQUEST_BIDI

CqServer::~CqServer() { Shutdown(); }

void CqServer::AddTo(grpc::ServerBuilder& builder) {
  if (handlers_.data) builder.RegisterService(&data_service_);
  if (handlers_.admin) builder.RegisterService(&admin_service_);
  if (handlers_.health) builder.RegisterService(&health_service_);
  if (handlers_.reflection) {
    builder.RegisterService(&reflection_v1_service_);
    builder.RegisterService(&reflection_v1alpha_service_);
  }
  for (int i = 0; i < options_.threads; ++i) {
    queues_.push_back(builder.AddCompletionQueue());
  }
}

void CqServer::Start() {
  started_ = true;
  for (auto& queue : queues_) {
    for (const auto& method : methods_) {
      for (int i = 0; i < method->ahead(); ++i) {
        method->RequestOne(*this, queue.get());
      }
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
