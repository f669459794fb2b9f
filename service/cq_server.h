// Every service rowgate offers, served on gRPC's completion-queue (async)
// API: rowgate.v1.DataService (BatchGet and StreamBatchGet are the hot
// path), rowgate.v1.AdminService, grpc.health.v1.Health and server
// reflection (v1, v1alpha).
//
// Why: on gRPC 1.51 every callback reaction runs on a shared pool of
// "nexting" threads and a reactor's OnDone is handed to yet another executor
// thread, a wake per call that a CQ server does not pay (README
// "Benchmarks"). And those nexting threads exist, polling the same
// connections as the CQ thread, as soon as a single method of the server is
// on the callback API: so no method is. Here each of `threads` threads owns
// one completion queue and polls it; a new call is handled on that thread,
// database workers start Finish/Write themselves, and OnDone runs on the CQ
// thread when the last of the call's events arrives.
//
// The calls are the same reactors the callback API runs
// (service/batch_get_reactors.h, the DataServiceImpl and AdminServiceImpl
// Serve* methods, the reflection and health reactors): a small adapter per
// call plays the part of gRPC's callback call object (ServerCallbackUnary,
// ServerCallbackWriter, ServerCallbackReaderWriter) on top of the async API,
// so validation, cancellation, deadlines, backpressure and every status a
// client can see are the callback path's, and the reactors' tests cover
// both. Cancellation arrives through ServerContext::AsyncNotifyWhenDone.
//
// Lifetime: construct, AddTo(builder) before BuildAndStart, Start() after
// it, and Shutdown() after grpc::Server::Shutdown returned (calls that
// server still had are cancelled by then and end here). Start and Shutdown
// are called once, from one thread; the rest runs on the CQ threads and on
// whichever threads finish calls. The services' handlers must outlive
// Shutdown.
//
// Example:
//   CqServer cq(CqServer::Options{.threads = 1},
//               CqServer::Handlers{.data = &data_service, .health = &health});
//   cq.AddTo(builder);           // registers the services, adds the queues
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

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "service/admin_service.h"
#include "service/data_service.h"
#include "service/reflection_service.h"
#include "storage/mutex.h"

namespace rowgate::service {

class HealthService;  // service/health_service.h
class CqMethod;       // one method's calls, in the .cc

// The services with every method on the async API. DataService is served
// raw (grpc::ByteBuffer, parsed by rowgate: a request that does not parse gets
// INVALID_ARGUMENT naming its type, service/raw_call.h).
using CqDataService = v1::DataService::WithRawMethod_BatchGet<
    v1::DataService::WithRawMethod_StreamBatchGet<
        v1::DataService::WithRawMethod_Insert<
            v1::DataService::WithRawMethod_Update<
                v1::DataService::WithRawMethod_Delete<
                    v1::DataService::WithRawMethod_Page<
                        v1::DataService::WithRawMethod_ListEntities<
                            v1::DataService::WithRawMethod_DescribeEntity<
                                v1::DataService::WithRawMethod_Transact<
                                    v1::DataService::Service>>>>>>>>>;
using CqAdminService = v1::AdminService::AsyncService;
using CqHealthService = grpc::health::v1::Health::AsyncService;
using CqReflectionV1Service =
    grpc::reflection::v1::ServerReflection::AsyncService;
using CqReflectionV1AlphaService =
    grpc::reflection::v1alpha::ServerReflection::AsyncService;

class CqServer {
 public:
  struct Options {
    // CQ threads, each with a queue of its own.
    int threads = 1;
    // Calls of BatchGet and StreamBatchGet requested ahead per queue, so a
    // burst of new calls does not wait for the next request to be posted
    // (a call that arrives with none posted waits in gRPC until one is).
    int requests_ahead = 16;
    // The same for every other method.
    int requests_ahead_other = 2;
  };
  // Whose methods are served; a null one is not served at all. Each must
  // outlive Shutdown.
  struct Handlers {
    DataServiceImpl* data = nullptr;
    AdminServiceImpl* admin = nullptr;
    HealthService* health = nullptr;
    ReflectionServices* reflection = nullptr;
  };

  CqServer(Options options, Handlers handlers);
  ~CqServer();
  CqServer(const CqServer&) = delete;
  CqServer& operator=(const CqServer&) = delete;

  // Registers the services and adds the completion queues. Before
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

 private:
  void Poll(grpc::ServerCompletionQueue* cq);

  const Options options_;
  const Handlers handlers_;
  CqDataService data_service_;
  CqAdminService admin_service_;
  CqHealthService health_service_;
  CqReflectionV1Service reflection_v1_service_;
  CqReflectionV1AlphaService reflection_v1alpha_service_;
  // Every method served; each call points at its method's entry.
  std::vector<std::unique_ptr<CqMethod>> methods_;
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
