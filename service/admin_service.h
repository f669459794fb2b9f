// rowgate.v1.AdminService: operator-facing introspection (loader counters).
// Thread-safe; must outlive the server it is registered with, and the loader
// it reads must outlive it.
#ifndef ROWGATE_SERVICE_ADMIN_SERVICE_H_
#define ROWGATE_SERVICE_ADMIN_SERVICE_H_

#include "loader/batch_loader.h"
#include "rowgate/v1/rowgate.grpc.pb.h"

namespace rowgate::service {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `loader` may be null (memory backend): counters then read zero.
  explicit AdminServiceImpl(const loader::Loader* loader) : loader_(loader) {}

  grpc::ServerUnaryReactor* GetLoaderStats(
      grpc::CallbackServerContext* context,
      const v1::GetLoaderStatsRequest* request,
      v1::LoaderStats* response) override;

 private:
  const loader::Loader* const loader_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_ADMIN_SERVICE_H_
