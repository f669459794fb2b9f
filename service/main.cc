// rowgate's entry point: flags (each also from an environment variable),
// start-up, and graceful shutdown on SIGTERM or SIGINT.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/log.h"
#include "service/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Addresses to serve gRPC on, comma-separated: host:port (port 0 "
          "picks a free one) and/or unix:/path/to.sock.");
ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL connection URL or key=value string. Default: the "
          "DATABASE_URL environment variable.");
ABSL_FLAG(int, pool_size, 4, "Database connections (one worker thread each).");
ABSL_FLAG(std::string, schema, "public", "Schema whose tables are served.");
ABSL_FLAG(std::string, version_column, "lastchange",
          "Timestamp column used for optimistic concurrency where a table has "
          "it.");
ABSL_FLAG(int, max_keys_per_request, 1000,
          "Most keys (or rows) one BatchGet, Insert or Delete may carry.");
ABSL_FLAG(int, page_size_cap, 1000, "Largest page a Page call returns.");
ABSL_FLAG(bool, loader_merge, true,
          "Merge concurrent lookups into shared queries (false: one query "
          "per request, for comparison).");
ABSL_FLAG(int, loader_max_keys_per_query, 1000,
          "Most distinct keys in one lookup query; larger batches are split.");
ABSL_FLAG(int, loader_max_inflight_queries, 1,
          "Lookup queries in flight per table and key column before new keys "
          "gather for the next one.");
ABSL_FLAG(int, loader_parallel_min_keys, 64,
          "While a lookup query is in flight, a backlog of at least this many "
          "keys starts another query on a free connection instead of "
          "waiting.");
ABSL_FLAG(int, loader_max_wait_us, 0,
          "Hold a batch up to this long for more keys (0: never wait).");
ABSL_FLAG(int, loader_max_pending_keys, 100000,
          "Keys waiting for the database beyond which BatchGet answers "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, health_check_interval_ms, 1000,
          "How often the health service checks that PostgreSQL is "
          "reachable.");
ABSL_FLAG(int, shutdown_grace_s, 10,
          "Seconds in-flight calls get to finish on SIGTERM/SIGINT.");
ABSL_FLAG(int, db_connect_timeout_s, 5,
          "Seconds one attempt to connect to PostgreSQL may take (libpq's "
          "connect_timeout; at least 2), unless --database_url sets "
          "connect_timeout itself.");
ABSL_FLAG(int, statement_timeout_ms, 30000,
          "Longest one statement may run in PostgreSQL, lock waits included "
          "(statement_timeout per session); 0: bounded only by the caller's "
          "deadline.");
ABSL_FLAG(int, startup_timeout_s, 30,
          "Seconds to keep retrying an unreachable PostgreSQL at start.");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port for Prometheus metrics at /metrics (e.g. "
          "127.0.0.1:9464); empty: off.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the metrics port is written to this file once serving.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once serving.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(bool, bench_memory_backend, false,
          "Benchmark only: answer BatchGet on `users` from memory, with no "
          "database (the gRPC ceiling).");

namespace {

using rowgate::service::Log;
using rowgate::service::LogLevel;

// ROWGATE_<FLAG> environment variables set rowgate's flags (those defined
// in this file) that the command line leaves unset, e.g. ROWGATE_POOL_SIZE=8;
// DATABASE_URL sets --database_url.
void ApplyEnvironment(int argc, char** argv) {
  auto given = [&](absl::string_view name) {
    const std::string flag = absl::StrCat("--", name);
    for (int i = 1; i < argc; ++i) {
      absl::string_view arg = argv[i];
      if (arg == flag || absl::StartsWith(arg, flag + "=")) return true;
    }
    return false;
  };
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), "service/main.cc") || given(name)) {
      continue;
    }
    const std::string var =
        absl::AsciiStrToUpper(absl::StrCat("ROWGATE_", name));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      Log(LogLevel::kError, "invalid environment variable",
          {{"variable", var}, {"error", error}});
      std::exit(2);
    }
  }
  if (absl::GetFlag(FLAGS_database_url).empty() && !given("database_url")) {
    if (const char* url = std::getenv("DATABASE_URL")) {
      absl::SetFlag(&FLAGS_database_url, std::string(url));
    }
  }
}

void Fail(const std::string& message) {
  Log(LogLevel::kError, message);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists this file's flags (absl's default looks for a file named
  // after the binary).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "service/main.cc");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "a gRPC data-access sidecar for PostgreSQL.\n"
      "Every flag can also be set by an environment variable ROWGATE_<FLAG> "
      "(upper case), e.g. ROWGATE_POOL_SIZE=8.");
  ApplyEnvironment(argc, argv);
  absl::ParseCommandLine(argc, argv);
  // gRPC's locks are absl::Mutex; Debian's abseil tracks every lock in a
  // deadlock-detection graph, which cost ~5% of the server's CPU under load
  // in `make bench` profiles. Lock order is covered by tests, not by this.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  LogLevel level;
  if (!rowgate::service::ParseLogLevel(absl::GetFlag(FLAGS_log_level),
                                       &level)) {
    Fail("--log_level must be debug, info, warning or error");
  }
  rowgate::service::SetLogLevel(level);

  rowgate::service::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.database_url = absl::GetFlag(FLAGS_database_url);
  options.schema = absl::GetFlag(FLAGS_schema);
  options.version_column = absl::GetFlag(FLAGS_version_column);
  options.pool_size = absl::GetFlag(FLAGS_pool_size);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.health_check_interval =
      absl::Milliseconds(absl::GetFlag(FLAGS_health_check_interval_ms));
  options.startup_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_startup_timeout_s));
  options.db_timeouts.connect =
      absl::Seconds(absl::GetFlag(FLAGS_db_connect_timeout_s));
  options.db_timeouts.statement =
      absl::Milliseconds(absl::GetFlag(FLAGS_statement_timeout_ms));
  options.data.max_keys_per_request = absl::GetFlag(FLAGS_max_keys_per_request);
  options.data.page_size_cap = absl::GetFlag(FLAGS_page_size_cap);
  options.data.memory_backend = absl::GetFlag(FLAGS_bench_memory_backend);
  options.loader.merge = absl::GetFlag(FLAGS_loader_merge);
  options.loader.max_keys_per_query =
      absl::GetFlag(FLAGS_loader_max_keys_per_query);
  options.loader.max_inflight_per_queue =
      absl::GetFlag(FLAGS_loader_max_inflight_queries);
  options.loader.parallel_min_keys =
      std::max(1, absl::GetFlag(FLAGS_loader_parallel_min_keys));
  options.loader.max_wait =
      absl::Microseconds(absl::GetFlag(FLAGS_loader_max_wait_us));
  options.loader.max_pending_keys =
      absl::GetFlag(FLAGS_loader_max_pending_keys);

  if (options.pool_size < 1) Fail("--pool_size must be at least 1");
  if (absl::GetFlag(FLAGS_health_check_interval_ms) < 10) {
    Fail("--health_check_interval_ms must be at least 10");
  }
  if (absl::GetFlag(FLAGS_db_connect_timeout_s) < 2 ||
      absl::GetFlag(FLAGS_db_connect_timeout_s) > 3600) {
    Fail("--db_connect_timeout_s must be between 2 and 3600");
  }
  if (absl::GetFlag(FLAGS_statement_timeout_ms) < 0 ||
      absl::GetFlag(FLAGS_statement_timeout_ms) > 86400000) {
    Fail("--statement_timeout_ms must be between 0 and 86400000");
  }
  if (absl::GetFlag(FLAGS_shutdown_grace_s) < 0) {
    Fail("--shutdown_grace_s must not be negative");
  }
  if (options.data.max_keys_per_request < 1)
    Fail("--max_keys_per_request must be at least 1");
  if (options.data.page_size_cap < 1)
    Fail("--page_size_cap must be at least 1");
  if (options.loader.max_keys_per_query < 1)
    Fail("--loader_max_keys_per_query must be at least 1");
  if (options.loader.max_inflight_per_queue < 1)
    Fail("--loader_max_inflight_queries must be at least 1");
  if (absl::GetFlag(FLAGS_loader_max_wait_us) < 0)
    Fail("--loader_max_wait_us must not be negative");
  if (absl::GetFlag(FLAGS_loader_max_pending_keys) < 1)
    Fail("--loader_max_pending_keys must be at least 1");

  Log(LogLevel::kInfo, "starting",
      {{"listen", options.listen},
       {"database_url",
        rowgate::service::MaskDatabaseUrl(options.database_url)},
       {"schema", options.schema},
       {"pool_size", absl::StrCat(options.pool_size)},
       {"loader_merge", options.loader.merge ? "true" : "false"},
       {"loader_max_keys_per_query",
        absl::StrCat(options.loader.max_keys_per_query)},
       {"loader_max_inflight_queries",
        absl::StrCat(options.loader.max_inflight_per_queue)},
       {"loader_max_wait_us",
        absl::StrCat(absl::GetFlag(FLAGS_loader_max_wait_us))},
       {"memory_backend", options.data.memory_backend ? "true" : "false"}});

  // Signals are taken synchronously by this thread (sigwait), so no handler
  // runs in an arbitrary thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<rowgate::service::Server>> server =
      rowgate::service::Server::Create(options);
  if (!server.ok()) {
    Log(LogLevel::kError, "cannot start",
        {{"error", std::string(server.status().message())}});
    return 1;
  }
  // Written whole to a temporary name, then renamed: readers never see a
  // partial file.
  auto write_port = [](const std::string& file, int port) {
    if (file.empty()) return;
    const std::string tmp = file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), file.c_str());
  };
  write_port(absl::GetFlag(FLAGS_metrics_port_file), (*server)->metrics_port());
  write_port(absl::GetFlag(FLAGS_port_file), (*server)->port());
  int received = 0;
  sigwait(&signals, &received);
  Log(LogLevel::kInfo, "shutting down",
      {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s)));
  server->reset();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}
