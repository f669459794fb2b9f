// rowgate.v1.AdminService: operator-facing introspection (loader counters,
// the row cache's state) and the cache's ClearCache.
// Thread-safe; must outlive the server it is registered with, and the loader,
// cache and catalog it reads must outlive it.
#ifndef ROWGATE_SERVICE_ADMIN_SERVICE_H_
#define ROWGATE_SERVICE_ADMIN_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "loader/batch_loader.h"
#include "loader/row_cache.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "storage/catalog.h"
#include "storage/live_catalog.h"

namespace rowgate::service {

// How far the change feed behind the row cache is behind PostgreSQL.
struct ReplicationLag {
  uint64_t bytes = 0;
  absl::Duration time = absl::ZeroDuration();
};

// The row cache as the admin service sees it; cache null: no cache.
struct CacheAdmin {
  loader::RowCache* cache = nullptr;
  // The catalog served now (entities are named as in it). Never null when
  // `cache` is not.
  std::shared_ptr<const storage::LiveCatalog> catalog;
  size_t max_value_bytes = 1 << 20;
  // Reads the feed's lag; never blocks. May be empty.
  std::function<ReplicationLag()> lag;
};

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `loader` may be null (memory backend): counters then read zero.
  explicit AdminServiceImpl(const loader::Loader* loader, CacheAdmin cache = {})
      : loader_(loader), cache_(std::move(cache)) {}

  grpc::ServerUnaryReactor* GetLoaderStats(
      grpc::CallbackServerContext* context,
      const v1::GetLoaderStatsRequest* request,
      v1::LoaderStats* response) override {
    return ServeGetLoaderStats(context, request, response);
  }
  grpc::ServerUnaryReactor* ClearCache(
      grpc::CallbackServerContext* context,
      const v1::ClearCacheRequest* request,
      v1::ClearCacheResponse* response) override {
    return ServeClearCache(context, request, response);
  }
  grpc::ServerUnaryReactor* GetCacheStats(
      grpc::CallbackServerContext* context,
      const v1::GetCacheStatsRequest* request,
      v1::CacheStats* response) override {
    return ServeGetCacheStats(context, request, response);
  }

  // The same methods whichever API serves the call (the callback overrides
  // above forward here; service/cq_server.h calls these directly). Each
  // answers inline and never blocks.
  grpc::ServerUnaryReactor* ServeGetLoaderStats(
      grpc::ServerContextBase* context,
      const v1::GetLoaderStatsRequest* request, v1::LoaderStats* response);
  // FAILED_PRECONDITION without a cache or for an entity not cached;
  // INVALID_ARGUMENT for an unknown entity (as every RPC), a key of the
  // wrong kind, or keys without an entity.
  grpc::ServerUnaryReactor* ServeClearCache(
      grpc::ServerContextBase* context, const v1::ClearCacheRequest* request,
      v1::ClearCacheResponse* response);
  grpc::ServerUnaryReactor* ServeGetCacheStats(
      grpc::ServerContextBase* context, const v1::GetCacheStatsRequest* request,
      v1::CacheStats* response);

 private:
  absl::Status Clear(const v1::ClearCacheRequest& request);

  const loader::Loader* const loader_;
  const CacheAdmin cache_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_ADMIN_SERVICE_H_
