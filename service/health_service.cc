#include "service/health_service.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "service/call_context.h"
#include "service/log.h"

namespace rowgate::service {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using storage::MutexLock;

// gRPC's DefaultHealthCheckService refuses longer names too.
constexpr size_t kMaxServiceNameLength = 200;

grpc::Status NameTooLong(const std::string& name) {
  return grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT,
      absl::StrCat("service name is ", name.size(), " bytes, more than ",
                   kMaxServiceNameLength));
}

}  // namespace

// One Watch call. Its state lives in HealthService::watches_ under the
// service's lock; the reactor only forwards its reactions there and starts
// what the service decided. `response_` is touched only by whoever holds
// the call's one write (write_in_flight), so it needs no lock of its own.
class HealthService::WatchReactor final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  explicit WatchReactor(HealthService& service) : service_(service) {}

  void Take(WatchStep step) {
    switch (step) {
      case WatchStep::kNone:
        return;
      case WatchStep::kWrite:
        StartWrite(&response_);
        return;
      case WatchStep::kFinish:
        Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                            "health watch cancelled"));
        return;
    }
  }

  void OnWriteDone(bool ok) override { service_.WatchWriteDone(this, ok); }
  void OnCancel() override { service_.WatchCancelled(this); }
  void OnDone() override {
    service_.WatchDone(this);
    delete this;
  }

  HealthCheckResponse response_;

 private:
  HealthService& service_;
};

class HealthService::CallbackService final
    : public grpc::health::v1::Health::CallbackService {
 public:
  explicit CallbackService(HealthService& health) : health_(health) {}

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const HealthCheckRequest* request,
                                  HealthCheckResponse* response) override {
    return health_.Check(context, request, response);
  }
  grpc::ServerWriteReactor<HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const HealthCheckRequest* request) override {
    return health_.Watch(context, request);
  }

 private:
  HealthService& health_;
};

HealthService::HealthService()
    : callback_service_(std::make_unique<CallbackService>(*this)) {
  MutexLock lock(&mu_);
  serving_[""] = false;
}

HealthService::~HealthService() {
  MutexLock lock(&mu_);
  if (!watches_.empty()) {
    // Each open watch would call into this object later.
    Log(LogLevel::kError, "health service destroyed with Watch calls open",
        {{"watches", absl::StrCat(watches_.size())}});
    std::abort();
  }
}

grpc::Service* HealthService::callback_service() {
  return callback_service_.get();
}

void HealthService::SetServingStatus(const std::string& service_name,
                                     bool serving) {
  Steps steps;
  {
    MutexLock lock(&mu_);
    // After Shutdown a new name still becomes known, as NOT_SERVING.
    serving_[service_name] = serving && !shutdown_;
    steps = StepWatchesLocked(&service_name);
  }
  TakeSteps(steps);
}

void HealthService::SetServingStatus(bool serving) {
  Steps steps;
  {
    MutexLock lock(&mu_);
    if (shutdown_) return;
    for (auto& [name, value] : serving_) value = serving;
    steps = StepWatchesLocked(nullptr);
  }
  TakeSteps(steps);
}

void HealthService::Shutdown() {
  Steps steps;
  {
    MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [name, value] : serving_) value = false;
    steps = StepWatchesLocked(nullptr);
  }
  TakeSteps(steps);
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::ServerContextBase* /*context*/, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  using Reactor = FinishedReactor<grpc::ServerUnaryReactor>;
  const std::string& name = request->service();
  if (name.size() > kMaxServiceNameLength) {
    return new Reactor(NameTooLong(name));
  }
  bool serving;
  {
    MutexLock lock(&mu_);
    auto it = serving_.find(name);
    if (it == serving_.end()) {
      return new Reactor(
          grpc::Status(grpc::StatusCode::NOT_FOUND,
                       absl::StrCat("service name unregistered: \"",
                                    absl::CHexEscape(name), "\"")));
    }
    serving = it->second;
  }
  response->set_status(serving ? HealthCheckResponse::SERVING
                               : HealthCheckResponse::NOT_SERVING);
  return new Reactor(grpc::Status::OK);
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::ServerContextBase* /*context*/, const HealthCheckRequest* request) {
  if (request->service().size() > kMaxServiceNameLength) {
    return new FinishedReactor<grpc::ServerWriteReactor<HealthCheckResponse>>(
        NameTooLong(request->service()));
  }
  auto* watch = new WatchReactor(*this);
  WatchStep step;
  {
    MutexLock lock(&mu_);
    WatchState& state = watches_[watch];
    state.service_name = request->service();
    step = NextWatchStepLocked(watch, state);
  }
  // The call cannot end before this first write completes, so `watch` is
  // alive here though the lock is released.
  watch->Take(step);
  return watch;
}

HealthService::ServingStatus HealthService::WatchStatusLocked(
    const std::string& service_name) const {
  if (shutdown_) return HealthCheckResponse::NOT_SERVING;
  auto it = serving_.find(service_name);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING
                    : HealthCheckResponse::NOT_SERVING;
}

HealthService::WatchStep HealthService::NextWatchStepLocked(WatchReactor* watch,
                                                            WatchState& state) {
  // One write at a time; Finish only with none in flight (so StartWrite and
  // Finish never race, and nothing is started after Finish).
  if (state.write_in_flight || state.finish_started) return WatchStep::kNone;
  if (state.ending) {
    state.finish_started = true;
    return WatchStep::kFinish;
  }
  const ServingStatus status = WatchStatusLocked(state.service_name);
  if (state.last_sent == status) return WatchStep::kNone;
  state.last_sent = status;
  state.write_in_flight = true;
  // No write is in flight, so gRPC is done with the last message.
  watch->response_.set_status(status);
  return WatchStep::kWrite;
}

HealthService::Steps HealthService::StepWatchesLocked(
    const std::string* service_name) {
  Steps steps;
  for (auto& [watch, state] : watches_) {
    if (service_name != nullptr && state.service_name != *service_name) {
      continue;
    }
    const WatchStep step = NextWatchStepLocked(watch, state);
    if (step != WatchStep::kNone) steps.emplace_back(watch, step);
  }
  return steps;
}

void HealthService::TakeSteps(const Steps& steps) {
  // Each watch here holds its write or its Finish, so it cannot reach
  // OnDone (and be deleted) before its step is taken.
  for (const auto& [watch, step] : steps) watch->Take(step);
}

void HealthService::WatchWriteDone(WatchReactor* watch, bool ok) {
  WatchStep step;
  {
    MutexLock lock(&mu_);
    WatchState& state = watches_.at(watch);
    state.write_in_flight = false;
    if (!ok) state.ending = true;  // the stream is broken or cancelled
    step = NextWatchStepLocked(watch, state);
  }
  watch->Take(step);
}

void HealthService::WatchCancelled(WatchReactor* watch) {
  WatchStep step;
  {
    MutexLock lock(&mu_);
    WatchState& state = watches_.at(watch);
    state.ending = true;
    step = NextWatchStepLocked(watch, state);
  }
  watch->Take(step);
}

void HealthService::WatchDone(WatchReactor* watch) {
  MutexLock lock(&mu_);
  watches_.erase(watch);
}

}  // namespace rowgate::service
