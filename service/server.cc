#include "service/server.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
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
       "grpc.reflection.v1alpha.ServerReflection"});

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(server->data_service_.get());
  builder.RegisterService(server->admin_service_.get());
  server->reflection_->RegisterWith(builder);
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  server->port_ = port;
  std::vector<std::string> names;
  for (const storage::Entity& e : server->catalog_->entities()) {
    names.push_back(e.name);
  }
  Log(LogLevel::kInfo, "serving",
      {{"listen", options.listen},
       {"port", absl::StrCat(port)},
       {"entities", absl::StrJoin(names, ",")}});
  return server;
}

loader::LoaderStatsSnapshot Server::LoaderStats() const {
  return loader_ ? loader_->Stats() : loader::LoaderStatsSnapshot{};
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
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
