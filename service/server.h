// The rowgate server: owns the database workers, the loader, the gRPC
// services (DataService, AdminService, reflection v1 and v1alpha, and
// grpc.health.v1.Health) and the grpc::Server, and tears them down in the
// safe order.
//
// Health: SERVING for the whole server ("") and for rowgate.v1.DataService
// while a background check (one `SELECT 1` per interval on a connection of
// its own, never one per probe) reaches PostgreSQL; NOT_SERVING while it
// cannot, and from the start of Shutdown().
//
// Request ids (idempotent writes): Create() makes sure rowgate.request_log
// exists (a warning, not a failure, when the database user may not create
// it: only writes that carry a request_id are refused then), and a purger
// thread of its own deletes ids older than request_id_retention.
//
// Create() blocks until the catalog is read (retrying while PostgreSQL is
// unreachable, up to startup_timeout plus one connect timeout, or until
// stop_requested says so) and the
// server listens. Shutdown() may
// be called from any thread, once; the destructor calls it if needed.
//
// Example:
//   auto server = Server::Create(options);
//   if (!server.ok()) { ... }
//   (*server)->Shutdown(absl::Seconds(10));
#ifndef ROWGATE_SERVICE_SERVER_H_
#define ROWGATE_SERVICE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loader/batch_loader.h"
#include "service/admin_service.h"
#include "service/cq_server.h"
#include "service/data_service.h"
#include "service/health_service.h"
#include "service/metrics.h"
#include "service/reflection_service.h"
#include "storage/catalog.h"
#include "storage/change_feed.h"
#include "storage/conninfo.h"
#include "storage/request_log.h"
#include "storage/worker_pool.h"

namespace rowgate::service {

// Limits on what one client can make the transport hold (gRPC 1.51 core
// settings; README "Limits" lists each with what a client sees).
// gRPC 1.51 offers no limit on the number of connections.
struct TransportOptions {
  // Largest request message accepted (RESOURCE_EXHAUSTED beyond it) and
  // largest response sent (RESOURCE_EXHAUSTED to the caller beyond it).
  int max_receive_message_bytes = 4 << 20;
  int max_send_message_bytes = 16 << 20;
  // SETTINGS_MAX_CONCURRENT_STREAMS: calls open at once on one connection.
  // gRPC clients queue beyond it; a peer that opens more after acknowledging
  // the setting has its connection closed by gRPC 1.51.
  int max_concurrent_streams = 100;
  // Largest request header list (HTTP/2 header list size); larger requests
  // are refused.
  int max_metadata_bytes = 8 << 10;
  // (No grpc::ResourceQuota: with gRPC 1.51 a 32 MB quota was measured not
  // to bound the memory of header-only floods or rapid reset, README
  // "Hostile clients", so rowgate does not claim one.)

  // Server keepalive: ping an idle connection after keepalive_time, close it
  // if no answer within keepalive_timeout.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Client pings: at most one per min_ping_interval without data; the
  // connection is closed (GOAWAY ENHANCE_YOUR_CALM) after max_ping_strikes
  // pings faster than that.
  absl::Duration min_ping_interval = absl::Seconds(10);
  int max_ping_strikes = 2;
  // Close connections with no call for this long / older than this (after
  // a GOAWAY and a grace for calls in flight). Zero: never.
  absl::Duration max_connection_idle = absl::ZeroDuration();
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
};

// The row cache (README "Row cache"): which entities, how much memory, and
// the change feed that keeps it coherent.
struct CacheOptions {
  // Entity names, or {"*"} for every entity; empty: no cache.
  std::vector<std::string> entities;
  size_t max_bytes = 64 << 20;
  // Each cached row is kept encoded too (loader::RowCache::Options::
  // encode_row): faster hits, more bytes per entry.
  bool encoded_rows = true;
  // The feed stops vouching for the cache (every lookup goes to PostgreSQL)
  // while it is this far behind.
  absl::Duration max_lag = absl::Seconds(5);
};

struct ServerOptions {
  // host:port for the Prometheus endpoint (/metrics); empty: off.
  std::string metrics_listen;
  // How often the health check asks PostgreSQL whether it is reachable.
  absl::Duration health_check_interval = absl::Seconds(1);
  std::string listen = "127.0.0.1:50051";
  std::string database_url;
  std::string schema = "public";
  std::string version_column = "lastchange";
  int pool_size = 4;
  // Bounds on connecting to PostgreSQL and on each statement.
  storage::DatabaseTimeouts db_timeouts;
  absl::Duration startup_timeout = absl::Seconds(30);
  // Asked between start-up retries (at least every 100 ms while PostgreSQL
  // is unreachable); true: stop retrying, Create returns CANCELLED. Empty:
  // retry until startup_timeout. Must not block.
  std::function<bool()> stop_requested;
  // How long a request_id is remembered (at least; the purge runs every
  // tenth of it, at most every minute).
  absl::Duration request_id_retention = absl::Hours(24);
  // How often the catalog is checked for a migration; zero: never.
  absl::Duration schema_poll_interval = absl::Seconds(1);
  DataServiceOptions data;
  // Every service on gRPC's completion-queue API (service/cq_server.h)
  // with this many CQ threads; 0: on the callback API.
  int cq_threads = 1;
  loader::Loader::Options loader;
  TransportOptions transport;
  CacheOptions cache;
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(ServerOptions options);
  ~Server();

  // The first TCP port bound (useful with a ":0" listen address); 0 when
  // listening on unix sockets only.
  int port() const { return port_; }
  // The catalog served now (alive as long as this server).
  const storage::Catalog& catalog() const { return *live_catalog_->Current(); }
  // The metrics HTTP port, 0 when metrics are off.
  int metrics_port() const { return metrics_http_ ? metrics_http_->port() : 0; }
  loader::LoaderStatsSnapshot LoaderStats() const;
  // Null when rowgate runs without a cache.
  const loader::RowCache* row_cache() const { return row_cache_.get(); }

  // Stops taking calls, lets calls in flight finish within `grace` (then
  // cancels them), and drains the database workers. Blocks: up to `grace`
  // plus the larger of db_timeouts.connect and db_timeouts.cancel_grace,
  // however unresponsive PostgreSQL is.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;
  void HealthLoop(std::string database_url, absl::Duration interval,
                  storage::DatabaseTimeouts timeouts);
  void SetServing(bool serving);
  // Builds the row cache and its change feed per options.cache; on a
  // database that cannot feed it, logs why and leaves the cache off.
  // INVALID_ARGUMENT for an unknown entity in --cache_entities.
  absl::Status StartCache(const ServerOptions& options);
  // Reads the change feed's lag (empty without a feed).
  std::function<ReplicationLag()> CacheLagReader() const;
  // Everything /metrics shows, in the Prometheus text format.
  std::string RenderMetrics() const;

  // Declaration order is destruction order, reversed: the gRPC server goes
  // first, the pool (after an explicit drain in Shutdown) last.
  std::unique_ptr<storage::WorkerPool> pool_;
  std::shared_ptr<const storage::Catalog> catalog_;
  // The feed calls the cache from its own thread: it goes (is stopped)
  // before the cache, and both outlive the loader and the services, and
  // the live catalog, whose poller rebinds the cache.
  std::unique_ptr<loader::RowCache> row_cache_;
  std::unique_ptr<storage::ChangeFeed> change_feed_;
  // catalog_ kept current while running (storage/live_catalog.h).
  std::shared_ptr<storage::LiveCatalog> live_catalog_;
  std::unique_ptr<storage::RequestLog> request_log_;
  std::unique_ptr<storage::RequestLogPurger> request_log_purger_;
  std::unique_ptr<loader::PoolBatchExecutor> executor_;
  std::unique_ptr<loader::Loader> loader_;
  std::unique_ptr<DataServiceImpl> data_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<ReflectionServices> reflection_;
  std::unique_ptr<HealthService> health_;
  // Outlives grpc_server_ (its queues must); the services it serves outlive
  // it.
  std::unique_ptr<CqServer> cq_server_;
  std::shared_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  int port_ = 0;
  bool shut_down_ = false;

  mutable std::mutex health_mu_;
  std::condition_variable health_stop_;
  bool health_stopping_ = false;  // guarded by health_mu_
  int serving_ = -1;              // guarded by health_mu_; -1: not yet known
  std::thread health_thread_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_SERVER_H_
