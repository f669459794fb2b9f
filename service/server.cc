#include "service/server.h"

#include <algorithm>
#include <cstdint>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "service/log.h"
#include "service/memory_backend.h"
#include "service/proto_convert.h"
#include "storage/mutex.h"

namespace rowgate::service {
namespace {

absl::StatusOr<std::shared_ptr<const storage::Catalog>> LoadCatalog(
    const ServerOptions& options) {
  const absl::Time give_up = absl::Now() + options.startup_timeout;
  storage::Connection conn(options.database_url, nullptr, options.db_timeouts);
  while (true) {
    absl::StatusOr<std::shared_ptr<const storage::Catalog>> catalog =
        storage::Catalog::Load(conn, options.schema, options.version_column);
    if (catalog.ok() || !absl::IsUnavailable(catalog.status()) ||
        absl::Now() >= give_up) {
      return catalog;
    }
    Log(LogLevel::kWarning, "PostgreSQL unreachable; retrying",
        {{"error", std::string(catalog.status().message())}});
    // A second between tries, in steps short enough that a SIGTERM (a pod
    // deleted while its database is down) ends the start at once.
    const absl::Time next_try = absl::Now() + absl::Seconds(1);
    while (absl::Now() < next_try) {
      if (options.stop_requested && options.stop_requested()) {
        return absl::CancelledError(
            "start-up stopped while PostgreSQL was unreachable (signal "
            "received)");
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
}

// Keeps the row cache following the schema while rowgate runs: after each
// reload it rebinds the cache to the new catalog, and asks the change feed
// to follow the tables it should cache but does not (created, or created
// again, after start-up: any under --cache_entities=*, the named ones
// otherwise). Each table (by name and OID) is asked for once; once the feed
// vouches for its changes it is enabled in the cache and bound to the
// latest catalog. OnReload runs on the catalog poller's thread, the feed's
// answers on the feed's; one mutex orders their rebinds, so the last one
// binds the latest catalog.
class CacheFollower : public std::enable_shared_from_this<CacheFollower> {
 public:
  // `initial`: the start-up catalog, whose tables StartCache dealt with.
  CacheFollower(loader::RowCache* cache, storage::ChangeFeed* feed,
                const std::vector<std::string>& entities,
                std::shared_ptr<const storage::Catalog> initial)
      : cache_(cache),
        feed_(feed),
        all_(entities.size() == 1 && entities[0] == "*"),
        names_(entities.begin(), entities.end()),
        latest_(std::move(initial)) {
    for (const storage::Entity& e : latest_->entities()) {
      asked_[e.name] = e.oid;
    }
  }

  void OnReload(const std::shared_ptr<const storage::Catalog>& catalog) {
    if (cache_ == nullptr) return;
    std::vector<const storage::Entity*> follow;
    {
      storage::MutexLock lock(&mu_);
      latest_ = catalog;
      RebindLocked();
      if (feed_ == nullptr) return;
      for (const storage::Entity& e : catalog->entities()) {
        if (!all_ && !names_.contains(e.name)) continue;
        if (cache_->Caches(&e)) continue;
        auto [it, first] = asked_.try_emplace(e.name, e.oid);
        if (!first && it->second == e.oid) continue;
        it->second = e.oid;
        if (absl::Status why = loader::RowCache::Cacheable(e); !why.ok()) {
          Log(LogLevel::kWarning, "entity not cached",
              {{"entity", e.name}, {"reason", std::string(why.message())}});
          continue;
        }
        follow.push_back(&e);
      }
    }
    if (follow.empty()) return;
    // The feed holds the callback, and with it this follower, as long as
    // it runs (it outlives the live catalog that owns the follower).
    feed_->Follow(catalog, std::move(follow),
                  [self = shared_from_this()](const storage::Entity& entity,
                                              const absl::Status& status) {
                    self->Followed(entity, status);
                  });
  }

 private:
  void Followed(const storage::Entity& entity, const absl::Status& status) {
    if (!status.ok()) {
      Log(LogLevel::kWarning, "entity not cached",
          {{"entity", entity.name}, {"reason", std::string(status.message())}});
      return;
    }
    storage::MutexLock lock(&mu_);
    cache_->Enable(&entity);
    // `entity` may be of an older catalog than the one served now.
    RebindLocked();
    Log(LogLevel::kInfo, "entity now cached", {{"entity", entity.name}});
  }

  void RebindLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The live catalog keeps every catalog it served as long as the cache.
    for (const std::string& stopped : cache_->Rebind(*latest_)) {
      Log(LogLevel::kWarning, "entity no longer cached", {{"reason", stopped}});
    }
  }

  loader::RowCache* const cache_;
  storage::ChangeFeed* const feed_;
  const bool all_;
  const absl::flat_hash_set<std::string> names_;
  storage::Mutex mu_;
  std::shared_ptr<const storage::Catalog> latest_ ABSL_GUARDED_BY(mu_);
  // The tables asked for (or found uncacheable), by name: their OID then.
  absl::flat_hash_map<std::string, uint32_t> asked_ ABSL_GUARDED_BY(mu_);
};

// What one client may make the transport hold. Without these a single
// connection could open 20,000 streams (~23 KB of gRPC state each).
void ApplyTransportLimits(const TransportOptions& t,
                          grpc::ServerBuilder& builder) {
  auto ms = [](absl::Duration d) {
    return static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
  };
  builder.SetMaxReceiveMessageSize(t.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(t.max_send_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             t.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, t.max_metadata_bytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(t.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             ms(t.keepalive_timeout));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      ms(t.min_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             t.max_ping_strikes);
  if (t.max_connection_idle > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               ms(t.max_connection_idle));
  }
  if (t.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               ms(t.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               ms(t.max_connection_age_grace));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Create(ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  if (options.data.memory_backend) {
    server->catalog_ = MemoryBackendCatalog();
  } else {
    if (options.database_url.empty()) {
      return absl::InvalidArgumentError(
          "no database: set --database_url or DATABASE_URL");
    }
    if (options.schema == storage::RequestLog::kDefaultSchema) {
      // The catalog would serve the request log as an entity.
      return absl::InvalidArgumentError(absl::StrCat(
          "--schema must not be \"", storage::RequestLog::kDefaultSchema,
          "\": that schema holds rowgate's request log"));
    }
    absl::StatusOr<std::shared_ptr<const storage::Catalog>> catalog =
        LoadCatalog(options);
    if (!catalog.ok()) {
      return absl::Status(
          catalog.status().code(),
          absl::StrCat("reading the catalog of schema \"", options.schema,
                       "\": ", catalog.status().message()));
    }
    server->catalog_ = std::move(*catalog);
    for (const std::string& skipped : server->catalog_->skipped()) {
      Log(LogLevel::kWarning, "table not served", {{"reason", skipped}});
    }
    server->request_log_ = std::make_unique<storage::RequestLog>();
    {
      storage::Connection conn(options.database_url, nullptr,
                               options.db_timeouts);
      if (absl::Status s = server->request_log_->EnsureTable(conn); !s.ok()) {
        Log(LogLevel::kWarning,
            "request log unavailable: writes with a request_id will answer "
            "FAILED_PRECONDITION",
            {{"error", std::string(s.message())}});
      }
    }
    options.data.request_log = server->request_log_.get();
    server->request_log_purger_ = std::make_unique<storage::RequestLogPurger>(
        *server->request_log_,
        storage::RequestLogPurger::Options{
            .database_url = options.database_url,
            .timeouts = options.db_timeouts,
            .retention = options.request_id_retention,
            .interval = storage::RequestLogPurger::IntervalFor(
                options.request_id_retention),
            .on_change = [](const absl::Status& status) {
              if (status.ok()) {
                Log(LogLevel::kInfo, "request log purge works again");
              } else {
                Log(LogLevel::kWarning, "request log purge failed",
                    {{"error", std::string(status.message())}});
              }
            }});
    server->pool_ = std::make_unique<storage::WorkerPool>(
        storage::WorkerPool::Options{.database_url = options.database_url,
                                     .size = options.pool_size,
                                     .timeouts = options.db_timeouts});
    server->executor_ =
        std::make_unique<loader::PoolBatchExecutor>(*server->pool_);
    // A backlog may be spread over every connection of the pool.
    options.loader.max_parallel_split = server->pool_->size();
    if (absl::Status s = server->StartCache(options); !s.ok()) return s;
    options.loader.cache = server->row_cache_.get();
    options.data.cache = server->row_cache_.get();
    server->loader_ =
        std::make_unique<loader::Loader>(options.loader, *server->executor_);
  }
  if (options.data.memory_backend) {
    server->live_catalog_ =
        std::make_shared<storage::LiveCatalog>(server->catalog_);
  } else {
    server->live_catalog_ = std::make_shared<storage::LiveCatalog>(
        server->catalog_,
        storage::LiveCatalog::Options{
            .database_url = options.database_url,
            .timeouts = options.db_timeouts,
            .schema = options.schema,
            .version_column = options.version_column,
            .interval = options.schema_poll_interval,
            .on_reload =
                [follower = std::make_shared<CacheFollower>(
                     server->row_cache_.get(), server->change_feed_.get(),
                     options.cache.entities, server->catalog_)](
                    const std::shared_ptr<const storage::Catalog>& catalog) {
                  std::vector<std::string> names;
                  for (const storage::Entity& e : catalog->entities()) {
                    names.push_back(e.name);
                  }
                  Log(LogLevel::kInfo, "schema changed: catalog reloaded",
                      {{"entities", absl::StrJoin(names, ",")}});
                  follower->OnReload(catalog);
                },
            .on_error =
                [](const absl::Status& status) {
                  Log(LogLevel::kWarning, "schema check failed",
                      {{"error", std::string(status.message())}});
                }});
    // A statement that failed on a stale catalog reloads it before its
    // error is answered, so the next call sees the new shape.
    storage::SetSchemaErrorHook(
        [live = server->live_catalog_] { live->RefreshNow(absl::Seconds(2)); });
  }
  server->data_service_ = std::make_unique<DataServiceImpl>(
      options.data, server->live_catalog_, server->loader_.get(),
      server->pool_.get());
  server->admin_service_ = std::make_unique<AdminServiceImpl>(
      server->loader_.get(),
      CacheAdmin{.cache = server->row_cache_.get(),
                 .catalog = server->live_catalog_,
                 .max_value_bytes = options.data.max_value_bytes,
                 .lag = server->CacheLagReader()});
  server->reflection_ = std::make_unique<ReflectionServices>();
  server->reflection_->SetServiceNames(
      {"rowgate.v1.DataService", "rowgate.v1.AdminService",
       "grpc.reflection.v1.ServerReflection",
       "grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"});

  // rowgate's own health service (gRPC's built-in one is on the callback
  // API, which would bring its threads back to a CQ server:
  // service/cq_server.h). Reflection describes it from the linked-in
  // descriptors.
  server->health_ = std::make_unique<HealthService>();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which lets a second rowgate bind the
  // same port and silently take half the traffic. A taken port must fail.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  ApplyTransportLimits(options.transport, builder);
  // One or more addresses: host:port for TCP, unix:/path for a unix socket
  // (the natural transport between containers of one pod).
  std::vector<std::string> addresses =
      absl::StrSplit(options.listen, ',', absl::SkipWhitespace());
  if (addresses.empty()) {
    return absl::InvalidArgumentError("--listen names no address");
  }
  std::vector<int> ports(addresses.size(), 0);
  for (size_t i = 0; i < addresses.size(); ++i) {
    builder.AddListeningPort(addresses[i], grpc::InsecureServerCredentials(),
                             &ports[i]);
  }
  if (options.cq_threads > 0) {
    server->cq_server_ = std::make_unique<CqServer>(
        CqServer::Options{.threads = options.cq_threads},
        CqServer::Handlers{.data = server->data_service_.get(),
                           .admin = server->admin_service_.get(),
                           .health = server->health_.get(),
                           .reflection = server->reflection_.get()});
    server->cq_server_->AddTo(builder);
  } else {
    builder.RegisterService(server->data_service_.get());
    builder.RegisterService(server->admin_service_.get());
    builder.RegisterService(server->health_->callback_service());
    server->reflection_->RegisterWith(builder);
  }
  if (!options.metrics_listen.empty()) {
    // Only with metrics on: the interceptor costs every call a little.
    server->rpc_metrics_ = std::make_shared<RpcMetrics>();
    builder.experimental().SetInterceptorCreators(
        MetricsInterceptors(server->rpc_metrics_));
  }
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     " (address in use, or not a valid address)"));
  }
  if (server->cq_server_) server->cq_server_->Start();
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (ports[i] == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", addresses[i]));
    }
  }
  // The first TCP port (unix sockets report 1).
  for (size_t i = 0; i < addresses.size() && server->port_ == 0; ++i) {
    if (!absl::StartsWith(addresses[i], "unix:")) server->port_ = ports[i];
  }
  server->SetServing(true);  // the catalog was just read, or none is needed
  if (!options.data.memory_backend) {
    server->health_thread_ =
        std::thread([s = server.get(), url = options.database_url,
                     interval = options.health_check_interval,
                     timeouts = options.db_timeouts] {
          s->HealthLoop(url, interval, timeouts);
        });
  }
  if (!options.metrics_listen.empty()) {
    Server* s = server.get();
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
        MetricsHttpServer::Start(options.metrics_listen,
                                 [s] { return s->RenderMetrics(); });
    if (!http.ok()) return http.status();
    server->metrics_http_ = std::move(*http);
    Log(LogLevel::kInfo, "serving metrics",
        {{"metrics_listen", options.metrics_listen},
         {"port", absl::StrCat(server->metrics_http_->port())}});
  }
  std::vector<std::string> names;
  for (const storage::Entity& e : server->catalog_->entities()) {
    names.push_back(e.name);
  }
  Log(LogLevel::kInfo, "serving",
      {{"listen", options.listen},
       {"port", absl::StrCat(server->port_)},
       {"entities", absl::StrJoin(names, ",")}});
  return server;
}

absl::Status Server::StartCache(const ServerOptions& options) {
  const CacheOptions& c = options.cache;
  if (c.entities.empty()) return absl::OkStatus();
  const bool all = c.entities.size() == 1 && c.entities[0] == "*";
  std::vector<const storage::Entity*> chosen;
  if (all) {
    for (const storage::Entity& e : catalog_->entities()) chosen.push_back(&e);
  } else {
    for (const std::string& name : c.entities) {
      const storage::Entity* e = catalog_->Find(name);
      if (e == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--cache_entities names \"", storage::Abbreviate(name),
            "\", which is not an entity of schema \"", options.schema, "\""));
      }
      chosen.push_back(e);
    }
  }
  loader::RowCache::Options cache_options{.max_bytes = c.max_bytes};
  if (c.encoded_rows) cache_options.encode_row = EncodeRowWithAllColumns;
  auto cache = std::make_unique<loader::RowCache>(std::move(cache_options));
  std::vector<std::string> names;
  for (const storage::Entity* e : chosen) {
    if (absl::Status why = loader::RowCache::Cacheable(*e); !why.ok()) {
      Log(LogLevel::kWarning, "entity not cached",
          {{"entity", e->name}, {"reason", std::string(why.message())}});
      continue;
    }
    cache->Enable(e);
    names.push_back(e->name);
  }
  if (names.empty()) {
    Log(LogLevel::kWarning, "row cache off: no cacheable entity");
    return absl::OkStatus();
  }
  storage::ChangeFeed::Options feed_options;
  feed_options.database_url = options.database_url;
  feed_options.entities = names;
  feed_options.max_lag = c.max_lag;
  feed_options.timeouts = options.db_timeouts;
  absl::StatusOr<std::unique_ptr<storage::ChangeFeed>> feed =
      storage::ChangeFeed::Create(feed_options, catalog_, cache.get());
  if (!feed.ok()) {
    // Without the feed the cache could not vouch for anything.
    Log(LogLevel::kWarning,
        "row cache off: PostgreSQL's logical replication is not available to "
        "rowgate; every lookup goes to PostgreSQL (README \"Row cache\")",
        {{"error", std::string(feed.status().message())}});
    return absl::OkStatus();
  }
  row_cache_ = std::move(cache);
  change_feed_ = std::move(*feed);
  change_feed_->Start();
  Log(LogLevel::kInfo, "row cache on",
      {{"entities", absl::StrJoin(names, ",")},
       {"max_bytes", absl::StrCat(c.max_bytes)},
       {"max_lag_ms", absl::StrCat(absl::ToInt64Milliseconds(c.max_lag))}});
  return absl::OkStatus();
}

std::function<ReplicationLag()> Server::CacheLagReader() const {
  if (change_feed_ == nullptr) return nullptr;
  const storage::ChangeFeed* feed = change_feed_.get();
  return [feed] {
    const storage::ChangeFeedStats s = feed->Stats();
    return ReplicationLag{.bytes = s.lag_bytes, .time = s.lag};
  };
}

loader::LoaderStatsSnapshot Server::LoaderStats() const {
  return loader_ ? loader_->Stats() : loader::LoaderStatsSnapshot{};
}

void Server::SetServing(bool serving) {
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    if (serving_ == static_cast<int>(serving)) return;
    if (serving_ != -1) {
      Log(serving ? LogLevel::kInfo : LogLevel::kWarning,
          serving ? "PostgreSQL reachable again: SERVING"
                  : "PostgreSQL unreachable: NOT_SERVING");
    }
    serving_ = serving;
  }
  health_->SetServingStatus(serving);
  health_->SetServingStatus("rowgate.v1.DataService", serving);
}

std::string Server::RenderMetrics() const {
  std::string out = rpc_metrics_ ? rpc_metrics_->Render() : "";
  auto counter = [&out](absl::string_view name, absl::string_view help,
                        uint64_t value) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name,
                    " counter\n", name, " ", value, "\n");
  };
  auto gauge = [&out](absl::string_view name, absl::string_view help,
                      double value) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name,
                    " gauge\n", name, " ", value, "\n");
  };
  const loader::LoaderStatsSnapshot s = LoaderStats();
  counter("rowgate_loader_requests_total",
          "BatchGet lookups (calls and stream messages).", s.requests);
  counter("rowgate_loader_keys_total", "Keys asked, duplicates included.",
          s.keys);
  counter("rowgate_loader_queries_total", "Lookup queries sent to PostgreSQL.",
          s.queries);
  counter("rowgate_loader_keys_queried_total",
          "Distinct keys sent to PostgreSQL.", s.keys_queried);
  counter("rowgate_loader_failed_queries_total", "Lookup queries that failed.",
          s.failed_queries);
  counter("rowgate_loader_cancelled_queries_total",
          "Lookup queries cancelled in PostgreSQL: every caller was cancelled.",
          s.cancelled_queries);
  counter("rowgate_loader_cancelled_total",
          "Lookups cancelled or past their deadline.", s.cancelled);
  counter("rowgate_loader_rejected_total",
          "Lookups refused as overload (RESOURCE_EXHAUSTED).",
          s.rejected_overload);
  counter("rowgate_loader_dispatch_wait_microseconds_total",
          "Time lookups waited to be sent, summed.",
          s.dispatch_wait_micros_total);
  absl::StrAppend(
      &out,
      "# HELP rowgate_loader_keys_per_query Distinct keys per lookup query.\n"
      "# TYPE rowgate_loader_keys_per_query histogram\n");
  uint64_t cumulative = 0;
  for (int i = 0; i < loader::kKeysPerQueryBuckets; ++i) {
    cumulative += s.keys_per_query[i];
    const std::string le = i + 1 < loader::kKeysPerQueryBuckets
                               ? absl::StrCat(uint64_t{1} << i)
                               : "+Inf";
    absl::StrAppend(&out, "rowgate_loader_keys_per_query_bucket{le=\"", le,
                    "\"} ", cumulative, "\n");
  }
  absl::StrAppend(&out, "rowgate_loader_keys_per_query_sum ", s.keys_queried,
                  "\nrowgate_loader_keys_per_query_count ", s.queries, "\n");
  if (pool_) {
    gauge("rowgate_pool_connections", "Database connections (worker threads).",
          pool_->size());
    gauge("rowgate_pool_connections_in_use", "Connections running a statement.",
          pool_->busy());
    gauge("rowgate_pool_waiting",
          "Database operations waiting for a connection.", pool_->queued());
  }
  absl::StrAppend(
      &out,
      "# HELP rowgate_db_errors_total Failed statements, by the "
      "status they map to.\n# TYPE rowgate_db_errors_total counter\n");
  const std::array<uint64_t, 17> errors = storage::DatabaseErrorCounts();
  for (size_t code = 1; code < errors.size(); ++code) {
    absl::StrAppend(
        &out, "rowgate_db_errors_total{kind=\"",
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ",
        errors[code], "\n");
  }
  if (row_cache_) {
    const loader::RowCacheStats c = row_cache_->Stats();
    counter("rowgate_cache_hits_total",
            "Primary-key lookups answered from the row cache.", c.hits);
    counter("rowgate_cache_misses_total",
            "Primary-key lookups of cached entities sent to PostgreSQL.",
            c.misses);
    counter("rowgate_cache_evictions_total",
            "Entries evicted to stay within --cache_max_bytes.", c.evictions);
    counter("rowgate_cache_invalidations_total",
            "Entries forgotten: changes from the feed, writes, clears.",
            c.invalidations);
    counter("rowgate_cache_refused_fills_total",
            "Fetched rows not cached because an invalidation raced them.",
            c.refused_installs);
    counter("rowgate_cache_interruptions_total",
            "Times the change feed stopped vouching for the cache.",
            c.interruptions);
    gauge("rowgate_cache_bytes", "Bytes the row cache holds (accounted).",
          c.bytes);
    gauge("rowgate_cache_max_bytes", "--cache_max_bytes.", c.max_bytes);
    gauge("rowgate_cache_entries", "Rows and known-missing keys cached.",
          c.entries);
    gauge("rowgate_cache_live",
          "1 while the change feed vouches for the cache (it answers).",
          c.live ? 1 : 0);
    gauge("rowgate_cache_applied_lsn",
          "WAL position of the latest change applied to the cache.",
          static_cast<double>(c.applied_lsn));
    if (std::function<ReplicationLag()> lag = CacheLagReader()) {
      const ReplicationLag l = lag();
      gauge("rowgate_cache_replication_lag_bytes",
            "WAL the change feed has yet to read.",
            static_cast<double>(l.bytes));
      gauge("rowgate_cache_replication_lag_seconds",
            "Age of the oldest change position the feed has not reached.",
            absl::ToDoubleSeconds(l.time));
    }
  }
  int serving;
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    serving = serving_;
  }
  gauge("rowgate_up", "1 while the health service says SERVING.",
        serving == 1 ? 1 : 0);
  return out;
}

void Server::HealthLoop(std::string database_url, absl::Duration interval,
                        storage::DatabaseTimeouts timeouts) {
  storage::Connection conn(std::move(database_url), nullptr, timeouts);
  std::unique_lock<std::mutex> lock(health_mu_);
  while (!health_stop_.wait_for(lock, absl::ToChronoMilliseconds(interval),
                                [this] { return health_stopping_; })) {
    lock.unlock();
    // A server that accepts and never answers is unreachable too: the
    // check gets as long as a connect, so it never holds up Shutdown
    // longer than that.
    conn.set_deadline(absl::Now() + timeouts.connect);
    const bool reachable = conn.Execute("SELECT 1", {}).ok();
    SetServing(reachable);
    lock.lock();
  }
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  const absl::Time done_by = absl::Now() + grace;
  // The health check may be waiting on PostgreSQL (at most a connect
  // timeout): it is told to stop now and joined last, so that wait runs
  // alongside the grace period instead of before it.
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    health_stopping_ = true;
  }
  health_stop_.notify_all();
  metrics_http_.reset();
  // Create() may have failed before the gRPC server existed.
  if (grpc_server_ != nullptr) {
    // Probes see NOT_SERVING from here on, while calls in flight finish.
    // (A late SetServing from the health thread cannot undo it: the
    // health service answers NOT_SERVING for good once shut down.)
    health_->Shutdown();
    grpc_server_->Shutdown(absl::ToChronoTime(done_by));
  }
  if (cq_server_) cq_server_->Shutdown();
  // Every call is finished now; run what the workers still hold, then stop
  // them, before the loader that queued those tasks goes away. Statements
  // still running at the end of the grace period are cut off.
  if (pool_) pool_->Shutdown(done_by);
  storage::SetSchemaErrorHook(nullptr);
  if (health_thread_.joinable()) health_thread_.join();
  // Its slot goes with its connection: nothing left behind on the server.
  if (change_feed_) change_feed_->Stop();
  request_log_purger_.reset();
  if (loader_) {
    Log(LogLevel::kInfo, "loader stats",
        {{"stats", loader_->Stats().ToString()}});
  }
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

}  // namespace rowgate::service
