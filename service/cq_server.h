// BatchGet and StreamBatchGet served on gRPC's completion-queue (async) API,
// the hot path; every other DataService method stays on the callback API.
//
// Why: on gRPC 1.51 every callback reaction runs on a shared pool of
// "nexting" threads and a reactor's OnDone is handed to yet another executor
// thread, a wake per call that a CQ server does not pay (README
// "Benchmarks"). Here each of `threads` threads owns one completion queue
// and polls it; a new call is handled on that thread, database workers start
// Finish/Write themselves, and OnDone runs on the CQ thread when the last of
// the call's events arrives.
//
// The calls are the same reactors the callback API runs
// (service/batch_get_reactors.h): a small adapter per call plays the part of
// gRPC's callback call object (ServerCallbackUnary /
// ServerCallbackReaderWriter) on top of the async API, so validation,
// cancellation, deadlines, backpressure and every status a client can see are
// the callback path's, and the reactors' tests cover both. Cancellation arrives
// through ServerContext::AsyncNotifyWhenDone.
//
// Lifetime: construct, AddTo(builder) before BuildAndStart, Start() after
// it, and Shutdown() after grpc::Server::Shutdown returned (calls that
// server still had are cancelled by then and end here). Start and Shutdown
// are called once, from one thread; the rest runs on the CQ threads and on
// whichever threads finish calls. The DataServiceImpl must outlive Shutdown.
//
// Example:
//   CqServer cq(CqServer::Options{.threads = 1}, data_service);
//   cq.AddTo(builder);           // registers the service, adds the queues
//   auto server = builder.BuildAndStart();
//   cq.Start();
//   ...
//   server->Shutdown(deadline);
//   cq.Shutdown();
#ifndef ROWGATE_SERVICE_CQ_SERVER_H_
#define ROWGATE_SERVICE_CQ_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "rowgate/v1/rowgate.grpc.pb.h"
#include "service/data_service.h"
#include "storage/mutex.h"

namespace rowgate::service {

// DataService with BatchGet and StreamBatchGet on the async API (raw
// ByteBuffers, parsed by rowgate as on the callback path) and the other
// methods forwarded to the callback handlers of a DataServiceImpl.
using CqDataServiceBase = v1::DataService::WithRawMethod_BatchGet<
    v1::DataService::WithRawMethod_StreamBatchGet<
        v1::DataService::WithRawCallbackMethod_Insert<
            v1::DataService::WithRawCallbackMethod_Update<
                v1::DataService::WithRawCallbackMethod_Delete<
                    v1::DataService::WithRawCallbackMethod_Page<
                        v1::DataService::WithRawCallbackMethod_ListEntities<
                            v1::DataService::
                                WithRawCallbackMethod_DescribeEntity<
                                    v1::DataService::
                                        WithRawCallbackMethod_Transact<
                                            v1::DataService::Service>>>>>>>>>;

class CqDataService final : public CqDataServiceBase {
 public:
  explicit CqDataService(DataServiceImpl& impl) : impl_(impl) {}
  DataServiceImpl& impl() { return impl_; }

  grpc::ServerUnaryReactor* Insert(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    return impl_.Insert(context, request, response);
  }
  grpc::ServerUnaryReactor* Update(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    return impl_.Update(context, request, response);
  }
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    return impl_.Delete(context, request, response);
  }
  grpc::ServerUnaryReactor* Page(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override {
    return impl_.Page(context, request, response);
  }
  grpc::ServerUnaryReactor* ListEntities(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override {
    return impl_.ListEntities(context, request, response);
  }
  grpc::ServerUnaryReactor* DescribeEntity(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override {
    return impl_.DescribeEntity(context, request, response);
  }
  grpc::ServerUnaryReactor* Transact(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override {
    return impl_.Transact(context, request, response);
  }

 private:
  DataServiceImpl& impl_;
};

class CqServer {
 public:
  struct Options {
    // CQ threads, each with a queue of its own.
    int threads = 1;
    // Calls of each method requested ahead per queue, so a burst of new
    // calls does not wait for the next request to be posted.
    int requests_ahead = 16;
  };

  CqServer(Options options, DataServiceImpl& impl);
  ~CqServer();
  CqServer(const CqServer&) = delete;
  CqServer& operator=(const CqServer&) = delete;

  // Registers the service and adds the completion queues. Before
  // BuildAndStart.
  void AddTo(grpc::ServerBuilder& builder);
  // Requests calls and starts the threads. After BuildAndStart.
  void Start();
  // Waits until every call has ended (grpc::Server::Shutdown must have
  // returned: then each remaining call is cancelled and ends promptly),
  // shuts the queues down and joins the threads. Blocks.
  void Shutdown();

  // Called by the calls; not for other users.
  void CallStarted() { live_calls_.fetch_add(1, std::memory_order_relaxed); }
  void CallEnded();
  CqDataService& service() { return service_; }

 private:
  void Poll(grpc::ServerCompletionQueue* cq);

  const Options options_;
  CqDataService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> live_calls_{0};
  storage::Mutex mu_;
  storage::CondVar all_ended_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_CQ_SERVER_H_
