// rowgate's entry point: flags (each also from an environment variable),
// start-up, and graceful shutdown on SIGTERM or SIGINT.
#include <malloc.h>
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
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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
ABSL_FLAG(int, cq_threads, 1,
          "Threads serving every method on gRPC's completion-queue API; 0 "
          "serves them on the callback API.");
ABSL_FLAG(std::string, schema, "public", "Schema whose tables are served.");
ABSL_FLAG(std::string, version_column, "lastchange",
          "Timestamp column used for optimistic concurrency where a table has "
          "it.");
ABSL_FLAG(int, max_keys_per_request, 1000,
          "Most keys (or rows) one BatchGet, Insert or Delete may carry.");
ABSL_FLAG(int, max_operations_per_transaction, 100,
          "Most operations one Transact may carry.");
ABSL_FLAG(int, schema_poll_interval_ms, 1000,
          "How often the schema's catalog is checked for a migration (a new "
          "table, a new, dropped or retyped column); 0: never (a restart "
          "picks changes up).");
ABSL_FLAG(int, page_size_cap, 1000, "Largest page a Page call returns.");
ABSL_FLAG(int, max_page_offset, 100000,
          "Most rows a Page may skip with offset (deeper: page_token).");
ABSL_FLAG(int, max_include_depth, 3,
          "Levels of includes (related rows) one BatchGet or Page may ask "
          "for; deeper is INVALID_ARGUMENT naming the include path");
ABSL_FLAG(int, max_filters_per_page, 64,
          "Most filters one Page call may carry.");
ABSL_FLAG(int, max_in_values, 1000, "Most values one IN filter may list.");
ABSL_FLAG(int, max_value_bytes, 1 << 20,
          "Largest string or bytes value a request may carry.");
ABSL_FLAG(bool, loader_merge, true,
          "Merge concurrent lookups into shared queries (false: one query "
          "per request, for comparison).");
ABSL_FLAG(int, loader_max_keys_per_query, 1000,
          "Most distinct keys in one lookup query; larger batches are split.");
ABSL_FLAG(int, loader_max_inflight_queries, 1,
          "Lookup queries in flight per table and key column before new keys "
          "gather for the next one.");
ABSL_FLAG(int, loader_parallel_min_keys, 256,
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
ABSL_FLAG(int, request_id_retention_s, 86400,
          "Seconds a write's request_id is remembered: a retry with the "
          "same id within it returns the first answer. Expired ids are "
          "purged in the background.");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port for Prometheus metrics at /metrics (e.g. "
          "127.0.0.1:9464); empty: off.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the metrics port is written to this file once serving.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once serving.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(int, stream_max_inflight, 1024,
          "StreamBatchGet requests in flight on one stream; the stream stops "
          "reading more until answers go out (backpressure).");
// Transport limits: what one client may make gRPC hold (README "Limits").
ABSL_FLAG(int, max_receive_message_bytes, 4 << 20,
          "Largest request message; larger ones get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_send_message_bytes, 16 << 20,
          "Largest response message; a larger answer fails with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_concurrent_streams, 100,
          "Calls open at once on one HTTP/2 connection "
          "(SETTINGS_MAX_CONCURRENT_STREAMS).");
ABSL_FLAG(int, max_metadata_bytes, 8 << 10,
          "Largest request header list (metadata) accepted.");
ABSL_FLAG(int, keepalive_time_s, 60,
          "Ping a connection after this long without activity.");
ABSL_FLAG(int, keepalive_timeout_s, 20,
          "Close a connection whose ping is unanswered this long.");
ABSL_FLAG(int, min_client_ping_interval_s, 10,
          "Shortest interval between client pings without data; faster "
          "pings are strikes.");
ABSL_FLAG(int, max_ping_strikes, 2,
          "Pings too fast after which a connection is closed (GOAWAY "
          "ENHANCE_YOUR_CALM); 0: no limit.");
ABSL_FLAG(int, max_connection_idle_s, 0,
          "Close a connection with no call for this long (0: never).");
ABSL_FLAG(int, max_connection_age_s, 0,
          "Close connections older than this with a GOAWAY (0: never).");
ABSL_FLAG(int, max_connection_age_grace_s, 30,
          "Time calls get to finish on a connection closed for its age.");
ABSL_FLAG(int, malloc_trim_interval_s, 5,
          "Every this many seconds, hand memory freed since back to the "
          "system (glibc malloc_trim); 0: never.");
ABSL_FLAG(std::string, cache_entities, "",
          "Entities whose primary-key lookups are answered from a shared row "
          "cache kept coherent by logical replication, comma-separated, or "
          "* for all; empty: no cache (README \"Row cache\").");
ABSL_FLAG(int64_t, cache_max_bytes, int64_t{64} << 20,
          "Memory the row cache may take; least recently used rows are "
          "evicted beyond it. Entries are held to 15/16 of it, the rest "
          "left for the allocator's overhead under churn.");
ABSL_FLAG(bool, cache_encoded_rows, true,
          "Keep each cached row also encoded as answers carry it (every "
          "column, as a map): faster hits of many rows, and each entry "
          "takes more of --cache_max_bytes (1.4x for the demo's users).");
ABSL_FLAG(int, cache_max_lag_ms, 5000,
          "While the change feed is this far behind PostgreSQL, the row "
          "cache answers nothing (every lookup goes to PostgreSQL).");
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

// Exits 2 naming the flag unless min <= value <= max.
void RequireRange(absl::string_view flag, int value, int min, int max) {
  if (value >= min && value <= max) return;
  Fail(absl::StrCat("--", flag, " must be between ", min, " and ", max,
                    " (got ", value, ")"));
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

  // Every numeric flag is checked as the int it was parsed into, before any
  // conversion: -1 stored in a size_t would read as "no limit".
  RequireRange("pool_size", absl::GetFlag(FLAGS_pool_size), 1, 10000);
  RequireRange("cq_threads", absl::GetFlag(FLAGS_cq_threads), 0, 64);
  RequireRange("max_keys_per_request",
               absl::GetFlag(FLAGS_max_keys_per_request), 1, 1000000);
  RequireRange("max_operations_per_transaction",
               absl::GetFlag(FLAGS_max_operations_per_transaction), 1, 100000);
  RequireRange("schema_poll_interval_ms",
               absl::GetFlag(FLAGS_schema_poll_interval_ms), 0, 86400000);
  RequireRange("page_size_cap", absl::GetFlag(FLAGS_page_size_cap), 1, 1000000);
  RequireRange("max_page_offset", absl::GetFlag(FLAGS_max_page_offset), 0,
               1000000000);
  RequireRange("max_include_depth", absl::GetFlag(FLAGS_max_include_depth), 1,
               16);
  RequireRange("max_filters_per_page",
               absl::GetFlag(FLAGS_max_filters_per_page), 1, 10000);
  RequireRange("max_in_values", absl::GetFlag(FLAGS_max_in_values), 1, 60000);
  RequireRange("max_value_bytes", absl::GetFlag(FLAGS_max_value_bytes), 1,
               1 << 30);
  RequireRange("loader_max_keys_per_query",
               absl::GetFlag(FLAGS_loader_max_keys_per_query), 1, 1000000);
  RequireRange("loader_max_inflight_queries",
               absl::GetFlag(FLAGS_loader_max_inflight_queries), 1, 10000);
  RequireRange("loader_parallel_min_keys",
               absl::GetFlag(FLAGS_loader_parallel_min_keys), 1, 1000000);
  RequireRange("loader_max_wait_us", absl::GetFlag(FLAGS_loader_max_wait_us), 0,
               60000000);
  RequireRange("loader_max_pending_keys",
               absl::GetFlag(FLAGS_loader_max_pending_keys), 1, 100000000);
  RequireRange("health_check_interval_ms",
               absl::GetFlag(FLAGS_health_check_interval_ms), 10, 3600000);
  RequireRange("shutdown_grace_s", absl::GetFlag(FLAGS_shutdown_grace_s), 0,
               3600);
  RequireRange("startup_timeout_s", absl::GetFlag(FLAGS_startup_timeout_s), 0,
               3600);
  RequireRange("db_connect_timeout_s",
               absl::GetFlag(FLAGS_db_connect_timeout_s), 2, 3600);
  RequireRange("statement_timeout_ms",
               absl::GetFlag(FLAGS_statement_timeout_ms), 0, 86400000);
  // Up to ten years, so that the retention in seconds stays far from any
  // overflow in PostgreSQL's interval arithmetic.
  RequireRange("request_id_retention_s",
               absl::GetFlag(FLAGS_request_id_retention_s), 1, 315360000);
  RequireRange("stream_max_inflight", absl::GetFlag(FLAGS_stream_max_inflight),
               1, 1000000);
  RequireRange("max_receive_message_bytes",
               absl::GetFlag(FLAGS_max_receive_message_bytes), 1024, 1 << 30);
  RequireRange("max_send_message_bytes",
               absl::GetFlag(FLAGS_max_send_message_bytes), 1024, 1 << 30);
  RequireRange("max_concurrent_streams",
               absl::GetFlag(FLAGS_max_concurrent_streams), 1, 100000);
  RequireRange("max_metadata_bytes", absl::GetFlag(FLAGS_max_metadata_bytes),
               1024, 1 << 24);
  RequireRange("keepalive_time_s", absl::GetFlag(FLAGS_keepalive_time_s), 1,
               86400);
  RequireRange("keepalive_timeout_s", absl::GetFlag(FLAGS_keepalive_timeout_s),
               1, 3600);
  RequireRange("min_client_ping_interval_s",
               absl::GetFlag(FLAGS_min_client_ping_interval_s), 0, 86400);
  RequireRange("max_ping_strikes", absl::GetFlag(FLAGS_max_ping_strikes), 0,
               1000);
  // Passed to gRPC in milliseconds as an int: at most ~24 days.
  RequireRange("max_connection_idle_s",
               absl::GetFlag(FLAGS_max_connection_idle_s), 0, 2000000);
  RequireRange("max_connection_age_s",
               absl::GetFlag(FLAGS_max_connection_age_s), 0, 2000000);
  RequireRange("max_connection_age_grace_s",
               absl::GetFlag(FLAGS_max_connection_age_grace_s), 0, 86400);
  RequireRange("malloc_trim_interval_s",
               absl::GetFlag(FLAGS_malloc_trim_interval_s), 0, 3600);

  RequireRange("cache_max_lag_ms", absl::GetFlag(FLAGS_cache_max_lag_ms), 10,
               3600000);
  const int64_t cache_max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);
  if (cache_max_bytes < (int64_t{1} << 20) ||
      cache_max_bytes > (int64_t{1} << 40)) {
    Fail(absl::StrCat("--cache_max_bytes must be between 1 MiB and 1 TiB (got ",
                      cache_max_bytes, ")"));
  }

  rowgate::service::ServerOptions options;
  options.cache.entities = absl::StrSplit(absl::GetFlag(FLAGS_cache_entities),
                                          ',', absl::SkipWhitespace());
  for (std::string& name : options.cache.entities) {
    name = std::string(absl::StripAsciiWhitespace(name));
  }
  options.cache.max_bytes = static_cast<size_t>(cache_max_bytes);
  options.cache.encoded_rows = absl::GetFlag(FLAGS_cache_encoded_rows);
  options.cache.max_lag =
      absl::Milliseconds(absl::GetFlag(FLAGS_cache_max_lag_ms));
  options.listen = absl::GetFlag(FLAGS_listen);
  options.database_url = absl::GetFlag(FLAGS_database_url);
  options.schema = absl::GetFlag(FLAGS_schema);
  options.version_column = absl::GetFlag(FLAGS_version_column);
  options.pool_size = absl::GetFlag(FLAGS_pool_size);
  options.cq_threads = absl::GetFlag(FLAGS_cq_threads);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.health_check_interval =
      absl::Milliseconds(absl::GetFlag(FLAGS_health_check_interval_ms));
  options.startup_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_startup_timeout_s));
  options.db_timeouts.connect =
      absl::Seconds(absl::GetFlag(FLAGS_db_connect_timeout_s));
  options.db_timeouts.statement =
      absl::Milliseconds(absl::GetFlag(FLAGS_statement_timeout_ms));
  options.request_id_retention =
      absl::Seconds(absl::GetFlag(FLAGS_request_id_retention_s));
  options.data.max_keys_per_request = absl::GetFlag(FLAGS_max_keys_per_request);
  options.data.max_operations_per_transaction =
      absl::GetFlag(FLAGS_max_operations_per_transaction);
  options.schema_poll_interval =
      absl::Milliseconds(absl::GetFlag(FLAGS_schema_poll_interval_ms));
  options.data.page_size_cap = absl::GetFlag(FLAGS_page_size_cap);
  options.data.max_page_offset = absl::GetFlag(FLAGS_max_page_offset);
  options.data.max_filters_per_page = absl::GetFlag(FLAGS_max_filters_per_page);
  options.data.max_include_depth = absl::GetFlag(FLAGS_max_include_depth);
  options.data.max_in_values = absl::GetFlag(FLAGS_max_in_values);
  options.data.max_value_bytes = absl::GetFlag(FLAGS_max_value_bytes);
  options.data.memory_backend = absl::GetFlag(FLAGS_bench_memory_backend);
  options.data.max_inflight_per_stream =
      absl::GetFlag(FLAGS_stream_max_inflight);
  {
    rowgate::service::TransportOptions& t = options.transport;
    t.max_receive_message_bytes =
        absl::GetFlag(FLAGS_max_receive_message_bytes);
    t.max_send_message_bytes = absl::GetFlag(FLAGS_max_send_message_bytes);
    t.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
    t.max_metadata_bytes = absl::GetFlag(FLAGS_max_metadata_bytes);
    t.keepalive_time = absl::Seconds(absl::GetFlag(FLAGS_keepalive_time_s));
    t.keepalive_timeout =
        absl::Seconds(absl::GetFlag(FLAGS_keepalive_timeout_s));
    t.min_ping_interval =
        absl::Seconds(absl::GetFlag(FLAGS_min_client_ping_interval_s));
    t.max_ping_strikes = absl::GetFlag(FLAGS_max_ping_strikes);
    t.max_connection_idle =
        absl::Seconds(absl::GetFlag(FLAGS_max_connection_idle_s));
    t.max_connection_age =
        absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_s));
    t.max_connection_age_grace =
        absl::Seconds(absl::GetFlag(FLAGS_max_connection_age_grace_s));
  }
  options.loader.merge = absl::GetFlag(FLAGS_loader_merge);
  options.loader.max_keys_per_query =
      absl::GetFlag(FLAGS_loader_max_keys_per_query);
  options.loader.max_inflight_per_queue =
      absl::GetFlag(FLAGS_loader_max_inflight_queries);
  options.loader.parallel_min_keys =
      absl::GetFlag(FLAGS_loader_parallel_min_keys);
  options.loader.max_wait =
      absl::Microseconds(absl::GetFlag(FLAGS_loader_max_wait_us));
  options.loader.max_pending_keys =
      absl::GetFlag(FLAGS_loader_max_pending_keys);

  Log(LogLevel::kInfo, "starting",
      {{"listen", options.listen},
       {"database_url",
        rowgate::service::MaskDatabaseUrl(options.database_url)},
       {"schema", options.schema},
       {"pool_size", absl::StrCat(options.pool_size)},
       {"cq_threads", absl::StrCat(options.cq_threads)},
       {"loader_merge", options.loader.merge ? "true" : "false"},
       {"loader_max_keys_per_query",
        absl::StrCat(options.loader.max_keys_per_query)},
       {"loader_max_inflight_queries",
        absl::StrCat(options.loader.max_inflight_per_queue)},
       {"loader_max_wait_us",
        absl::StrCat(absl::GetFlag(FLAGS_loader_max_wait_us))},
       {"max_concurrent_streams",
        absl::StrCat(options.transport.max_concurrent_streams)},
       {"memory_backend", options.data.memory_backend ? "true" : "false"},
       {"cache_entities", absl::GetFlag(FLAGS_cache_entities)}});

  // Signals are taken synchronously by this thread (sigwait), so no handler
  // runs in an arbitrary thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A signal that arrives while start-up retries stays pending (every
  // thread blocks it): seen here, it ends the start as it would the server.
  options.stop_requested = [] {
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) != 0) return false;
    return sigismember(&pending, SIGTERM) == 1 ||
           sigismember(&pending, SIGINT) == 1;
  };
  absl::StatusOr<std::unique_ptr<rowgate::service::Server>> server =
      rowgate::service::Server::Create(options);
  if (!server.ok()) {
    if (absl::IsCancelled(server.status())) {
      Log(LogLevel::kInfo, "stopped before serving",
          {{"reason", std::string(server.status().message())}});
      return 0;
    }
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
  // glibc keeps freed memory in its arenas: after a burst (e.g. 50,000
  // reset streams, README "Hostile clients") RSS stayed at ~600 MB with
  // almost all of it free. This thread, idle otherwise, returns it.
  const int trim_s = absl::GetFlag(FLAGS_malloc_trim_interval_s);
  int received = 0;
  while (true) {
    if (trim_s <= 0) {
      sigwait(&signals, &received);
      break;
    }
    const timespec interval{trim_s, 0};
    received = sigtimedwait(&signals, nullptr, &interval);
    if (received > 0) break;
    malloc_trim(0);
  }
  Log(LogLevel::kInfo, "shutting down",
      {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s)));
  server->reset();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}
