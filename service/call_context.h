// What rowgate's handlers read from a call's server context, the same for a
// call served on the callback API (grpc::CallbackServerContext) and on the
// completion-queue API (grpc::ServerContext): both derive from
// grpc::ServerContextBase.
#ifndef ROWGATE_SERVICE_CALL_CONTEXT_H_
#define ROWGATE_SERVICE_CALL_CONTEXT_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace rowgate::service {

// The status for a call that gRPC cancelled: its deadline passed, or the
// client went away.
inline absl::Status CancellationStatus(const grpc::ServerContextBase* context) {
  if (context->deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(
        "deadline exceeded before the lookup finished");
  }
  return absl::CancelledError("the call was cancelled by the client");
}

// The call's deadline as absl::Time (InfiniteFuture when it has none).
inline absl::Time DeadlineOf(const grpc::ServerContextBase* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// A reactor for a call its handler answers inline: it is finished before the
// handler returns it (the callback API and the CQ adapters both replay a
// Finish made before the reactor was bound) and deletes itself in OnDone.
// What ServerContextBase::DefaultReactor is on the callback API, which a
// call served on the completion-queue API does not have; also for a
// streaming call refused at once.
template <typename Reactor>
class FinishedReactor final : public Reactor {
 public:
  explicit FinishedReactor(grpc::Status status) {
    this->Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};
using InlineUnaryReactor = FinishedReactor<grpc::ServerUnaryReactor>;

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_CALL_CONTEXT_H_
