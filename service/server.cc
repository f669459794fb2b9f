#include "service/server.h"

#include <grpcpp/health_check_service_interface.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.pb.h"
#include "service/log.h"

namespace rowgate::service {
namespace {

absl::StatusOr<std::shared_ptr<const storage::Catalog>> LoadCatalog(
    const ServerOptions& options) {
  const absl::Time give_up = absl::Now() + options.startup_timeout;
  storage::Connection conn(options.database_url);
  while (true) {
    absl::StatusOr<std::shared_ptr<const storage::Catalog>> catalog =
        storage::Catalog::Load(conn, options.schema, options.version_column);
    if (catalog.ok() || !absl::IsUnavailable(catalog.status()) ||
        absl::Now() >= give_up) {
      return catalog;
    }
    Log(LogLevel::kWarning, "PostgreSQL unreachable; retrying",
        {{"error", std::string(catalog.status().message())}});
    absl::SleepFor(absl::Seconds(1));
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
    server->pool_ =
        std::make_unique<storage::WorkerPool>(storage::WorkerPool::Options{
            .database_url = options.database_url, .size = options.pool_size});
    server->executor_ =
        std::make_unique<loader::PoolBatchExecutor>(*server->pool_);
    server->loader_ =
        std::make_unique<loader::Loader>(options.loader, *server->executor_);
  }
  server->data_service_ = std::make_unique<DataServiceImpl>(
      options.data, server->catalog_, server->loader_.get(),
      server->pool_.get());
  server->admin_service_ =
      std::make_unique<AdminServiceImpl>(server->loader_.get());
  server->reflection_ = std::make_unique<ReflectionServices>();
  server->reflection_->SetServiceNames(
      {"rowgate.v1.DataService", "rowgate.v1.AdminService",
       "grpc.reflection.v1.ServerReflection",
       "grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"});

  // gRPC's built-in health service does not register its descriptors with
  // protobuf; touching ours links them in so reflection can describe it.
  grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
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
  builder.RegisterService(server->data_service_.get());
  builder.RegisterService(server->admin_service_.get());
  server->reflection_->RegisterWith(builder);
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
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
  if (options.data.memory_backend) {
    server->SetServing(true);
  } else {
    server->SetServing(true);  // the catalog was just read
    server->health_thread_ =
        std::thread([s = server.get(), url = options.database_url,
                     interval = options.health_check_interval] {
          s->HealthLoop(url, interval);
        });
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
  grpc::HealthCheckServiceInterface* health =
      grpc_server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus("rowgate.v1.DataService", serving);
}

void Server::HealthLoop(std::string database_url, absl::Duration interval) {
  storage::Connection conn(std::move(database_url));
  std::unique_lock<std::mutex> lock(health_mu_);
  while (!health_stop_.wait_for(lock, absl::ToChronoMilliseconds(interval),
                                [this] { return health_stopping_; })) {
    lock.unlock();
    const bool reachable = conn.Execute("SELECT 1", {}).ok();
    SetServing(reachable);
    lock.lock();
  }
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    health_stopping_ = true;
  }
  health_stop_.notify_all();
  if (health_thread_.joinable()) health_thread_.join();
  // Probes see NOT_SERVING from here on, while calls in flight finish.
  grpc_server_->GetHealthCheckService()->Shutdown();
  grpc_server_->Shutdown(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(grace));
  // Every call is finished now; run what the workers still hold, then stop
  // them, before the loader that queued those tasks goes away.
  if (pool_) pool_->Shutdown();
  if (loader_) {
    Log(LogLevel::kInfo, "loader stats",
        {{"stats", loader_->Stats().ToString()}});
  }
}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

}  // namespace rowgate::service
