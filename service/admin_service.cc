#include "service/admin_service.h"

namespace rowgate::service {

grpc::ServerUnaryReactor* AdminServiceImpl::GetLoaderStats(
    grpc::CallbackServerContext* context, const v1::GetLoaderStatsRequest*,
    v1::LoaderStats* response) {
  if (loader_ != nullptr) {
    const loader::LoaderStatsSnapshot s = loader_->Stats();
    response->set_requests(s.requests);
    response->set_keys(s.keys);
    response->set_queries(s.queries);
    response->set_keys_queried(s.keys_queried);
    response->set_rejected_overload(s.rejected_overload);
    response->set_cancelled(s.cancelled);
    response->set_failed_queries(s.failed_queries);
    for (uint64_t bucket : s.keys_per_query) {
      response->add_keys_per_query_buckets(bucket);
    }
    response->set_dispatch_wait_micros_total(s.dispatch_wait_micros_total);
    response->set_dispatch_wait_micros_max(s.dispatch_wait_micros_max);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace rowgate::service
