#include "service/admin_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/call_context.h"
#include "service/proto_convert.h"

namespace rowgate::service {

grpc::ServerUnaryReactor* AdminServiceImpl::ServeGetLoaderStats(
    grpc::ServerContextBase* /*context*/, const v1::GetLoaderStatsRequest*,
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
    response->set_cancelled_queries(s.cancelled_queries);
    for (uint64_t bucket : s.keys_per_query) {
      response->add_keys_per_query_buckets(bucket);
    }
    response->set_dispatch_wait_micros_total(s.dispatch_wait_micros_total);
    response->set_dispatch_wait_micros_max(s.dispatch_wait_micros_max);
  }
  return new InlineUnaryReactor(grpc::Status::OK);
}

absl::Status AdminServiceImpl::Clear(const v1::ClearCacheRequest& request) {
  if (cache_.cache == nullptr) {
    return absl::FailedPreconditionError(
        "rowgate runs without a row cache (--cache_entities is empty, or the "
        "change feed could not start; see the start-up log)");
  }
  if (request.entity().empty()) {
    if (request.keys_size() > 0) {
      return absl::InvalidArgumentError(
          "ClearCache has keys but no entity: name the entity they belong to");
    }
    cache_.cache->ClearAll();
    return absl::OkStatus();
  }
  const std::shared_ptr<const storage::Catalog> catalog =
      cache_.catalog->Current();
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*catalog, request.entity());
  if (!entity.ok()) return entity.status();
  if (!cache_.cache->Caches(*entity)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "entity ", (*entity)->name, " is not cached (see --cache_entities)"));
  }
  if (request.keys_size() == 0) {
    cache_.cache->ClearEntity(**entity);
    return absl::OkStatus();
  }
  const storage::Column& key = (*entity)->key();
  std::vector<std::string> keys;
  keys.reserve(request.keys_size());
  for (int i = 0; i < request.keys_size(); ++i) {
    absl::StatusOr<storage::Value> value =
        ValueFromProto(request.keys(i), key.name, cache_.max_value_bytes);
    absl::StatusOr<std::string> canonical =
        value.ok() ? storage::CanonicalKey(key.name, key.type, *value)
                   : absl::StatusOr<std::string>(value.status());
    if (!canonical.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", i, " of entity ", (*entity)->name, ": ",
                       canonical.status().message()));
    }
    keys.push_back(std::move(*canonical));
  }
  cache_.cache->Invalidate(**entity, keys);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::ServeClearCache(
    grpc::ServerContextBase* /*context*/, const v1::ClearCacheRequest* request,
    v1::ClearCacheResponse* response) {
  const absl::Status status = Clear(*request);
  if (status.ok()) response->set_entries(cache_.cache->Stats().entries);
  return new InlineUnaryReactor(ToGrpcStatus(status));
}

grpc::ServerUnaryReactor* AdminServiceImpl::ServeGetCacheStats(
    grpc::ServerContextBase* /*context*/, const v1::GetCacheStatsRequest*,
    v1::CacheStats* response) {
  if (cache_.cache != nullptr) {
    const loader::RowCacheStats s = cache_.cache->Stats();
    response->set_enabled(true);
    response->set_live(s.live);
    for (const storage::Entity& e : cache_.catalog->Current()->entities()) {
      if (cache_.cache->Caches(&e)) response->add_entities(e.name);
    }
    response->set_hits(s.hits);
    response->set_misses(s.misses);
    response->set_evictions(s.evictions);
    response->set_invalidations(s.invalidations);
    response->set_bytes(s.bytes);
    response->set_max_bytes(s.max_bytes);
    response->set_entries(s.entries);
    response->set_refused_installs(s.refused_installs);
    response->set_applied_lsn(s.applied_lsn);
    response->set_interruptions(s.interruptions);
    if (cache_.lag) {
      const ReplicationLag lag = cache_.lag();
      response->set_replication_lag_bytes(lag.bytes);
      response->set_replication_lag_seconds(absl::ToDoubleSeconds(lag.time));
    }
  }
  return new InlineUnaryReactor(grpc::Status::OK);
}

}  // namespace rowgate::service
