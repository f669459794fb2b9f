// grpc.health.v1.Health, served by rowgate (gRPC's built-in one is a
// callback-API service; see service/cq_server.h for why that matters).
// Check and Watch are reactor factories, so the same code serves the
// callback API (callback_service()) and the completion-queue API (an
// adapter in service/cq_server.cc drives the reactors). Semantics follow
// gRPC 1.51's DefaultHealthCheckService:
//   - "" (the whole server) is known from the start, NOT_SERVING until set;
//     a name becomes known when SetServingStatus names it.
//   - Check answers a known name's status, NOT_FOUND for any other.
//   - Watch writes the current status at once (SERVICE_UNKNOWN for a name
//     not known yet; the stream stays open), then each change of it. At most
//     one write is in flight per stream; when it completes, the latest
//     status is written if it differs from the last one written, so a burst
//     of changes ends in the final status without queueing the others.
//   - Shutdown is NOT_SERVING for good, for every name and every watch.
//   - A service name longer than 200 bytes is INVALID_ARGUMENT (gRPC's
//     limit), so a hostile Watch cannot park large keys here.
//
// Ownership and threads: the caller owns this object (or hands it to the
// server via grpc::HealthCheckServiceServerBuilderOption). It must outlive
// every call it serves: destroy it only after grpc::Server::Shutdown has
// returned and the CQ adapter (if any) has shut down, when every reactor has
// seen OnDone; the destructor aborts if a Watch is still open, as a
// use-after-free would follow. Every method is thread-safe and never blocks
// on I/O (a short lock; StartWrite and Finish are called with no lock held).
//
// Example:
//   HealthService health;
//   builder.RegisterService(health.callback_service());  // callback API
//   auto server = builder.BuildAndStart();
//   health.SetServingStatus("rowgate.v1.DataService", true);
//   health.SetServingStatus(true);  // "" and every other known name
//   ...
//   health.Shutdown();  // before server->Shutdown, so watchers hear it
#ifndef ROWGATE_SERVICE_HEALTH_SERVICE_H_
#define ROWGATE_SERVICE_HEALTH_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "storage/mutex.h"

namespace rowgate::service {

// grpc.health.v1.Health, its two methods as reactor factories.
class HealthService final : public grpc::HealthCheckServiceInterface {
 public:
  HealthService();  // "" (the whole server) is known and NOT_SERVING until set
  // Aborts if a Watch call has not seen OnDone yet (see the file comment).
  ~HealthService() override;
  HealthService(const HealthService&) = delete;
  HealthService& operator=(const HealthService&) = delete;

  // grpc::HealthCheckServiceInterface. Thread-safe, never block on I/O.
  void SetServingStatus(const std::string& service_name, bool serving) override;
  void SetServingStatus(bool serving) override;  // every known name
  // NOT_SERVING for good: later SetServingStatus calls cannot make a name
  // SERVING (one naming a new name makes it known as NOT_SERVING, as gRPC's
  // default does); open Watch streams, and any opened later, are told
  // NOT_SERVING (they stay open until the client or the server's shutdown
  // cancels them, as gRPC's default does). Idempotent.
  void Shutdown() override;

  // The two methods as reactors, for whichever API serves them. `context`
  // is the call's (a grpc::CallbackServerContext or a grpc::ServerContext);
  // request/response live until the reactor's OnDone. Neither uses
  // context->DefaultReactor() (not available to async calls). Check's
  // reactor has already called Finish when it is returned; Watch's has
  // already started its first write. Both delete themselves in OnDone.
  // Neither blocks.
  grpc::ServerUnaryReactor* Check(
      grpc::ServerContextBase* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response);
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::ServerContextBase* context,
      const grpc::health::v1::HealthCheckRequest* request);

  // A callback-API grpc::Service forwarding to Check/Watch, for a server on
  // the callback API (rowgate --cq_threads=0). Owned by this object.
  grpc::Service* callback_service();

 private:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;
  class WatchReactor;     // one Watch call; defined in the .cc
  class CallbackService;  // callback_service(); defined in the .cc

  // One open Watch call: the name it watches and where its one write stands.
  struct WatchState {
    std::string service_name;
    // The status last handed to StartWrite; none before the first write.
    std::optional<ServingStatus> last_sent;
    bool write_in_flight = false;  // from StartWrite until OnWriteDone
    // Cancelled, or a write failed: Finish once no write is in flight.
    bool ending = false;
    bool finish_started = false;
  };
  // What a watch must do once mu_ is released.
  enum class WatchStep { kNone, kWrite, kFinish };

  // The status a Watch of `service_name` should show now.
  ServingStatus WatchStatusLocked(const std::string& service_name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The watch's next step: write the current status if none is in flight
  // and it differs from the last one sent, or finish if it is ending. Marks
  // the step as taken (and fills the watch's response for a write).
  WatchStep NextWatchStepLocked(WatchReactor* watch, WatchState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next steps of the open watches of `service_name` (of every open
  // watch if null), for TakeSteps once mu_ is released.
  using Steps = std::vector<std::pair<WatchReactor*, WatchStep>>;
  Steps StepWatchesLocked(const std::string* service_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts each write or Finish. Called with no lock held: a reaction that
  // ran inline would take mu_.
  static void TakeSteps(const Steps& steps);
  // The reactions of a WatchReactor, which forwards them here.
  void WatchWriteDone(WatchReactor* watch, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void WatchCancelled(WatchReactor* watch) ABSL_LOCKS_EXCLUDED(mu_);
  void WatchDone(WatchReactor* watch) ABSL_LOCKS_EXCLUDED(mu_);

  storage::Mutex mu_;
  // Known names: true for SERVING.
  absl::flat_hash_map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Every Watch call from its creation until its OnDone.
  absl::flat_hash_map<WatchReactor*, WatchState> watches_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<CallbackService> callback_service_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_HEALTH_SERVICE_H_
