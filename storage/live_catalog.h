// The catalog rowgate serves now, kept up to date while it runs: a migration
// (a new table, a new, dropped or retyped column, a new unique index) is
// picked up without a restart.
//
// How: a thread of its own polls a fingerprint of the schema's catalog rows
// (md5 over pg_class, pg_attribute, pg_index and pg_constraint of the
// schema: one cheap query, no superuser, nothing to install) every
// `interval`, and reloads the catalog when it changed. A statement that
// fails the way a stale catalog makes it fail (SQLSTATE 42703 undefined
// column, 42P01 undefined table, 0A000 cached plan changed; see
// Connection's schema-error hook) wakes the poller at once, and the worker
// that saw the error waits (bounded) for that poll, so the call after the
// one that raced the DDL already sees the new shape. Each reload also tells
// every Connection to drop its prepared statements before its next one
// outside a transaction (InvalidatePreparedStatements).
//
// Every catalog ever served is kept until this is destroyed: callers and
// the loader's queues hold `const Entity*` into them without a reference
// (a few kilobytes per migration).
//
// Thread-safe. Current() never blocks; RefreshNow() blocks. The destructor
// stops the poller (interrupting a statement in progress) and must not run
// on it.
//
// Example:
//   auto live = LiveCatalog::Start(initial, options);   // polls
//   std::shared_ptr<const Catalog> catalog = live->Current();
#ifndef ROWGATE_STORAGE_LIVE_CATALOG_H_
#define ROWGATE_STORAGE_LIVE_CATALOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/conninfo.h"
#include "storage/mutex.h"

namespace rowgate::storage {

class LiveCatalog {
 public:
  struct Options {
    std::string database_url;
    DatabaseTimeouts timeouts;
    std::string schema = "public";
    std::string version_column = "lastchange";
    // Zero: no polling (a schema error still reloads).
    absl::Duration interval = absl::Seconds(1);
    // Called on the poller's thread after each reload with the new
    // catalog, or with an error when a reload fails.
    std::function<void(const std::shared_ptr<const Catalog>&)> on_reload;
    std::function<void(const absl::Status&)> on_error;
  };

  // A catalog that never changes (tests, the memory backend).
  explicit LiveCatalog(std::shared_ptr<const Catalog> fixed);
  // Serves `initial` and starts the poller. Never blocks.
  LiveCatalog(std::shared_ptr<const Catalog> initial, Options options);
  ~LiveCatalog();
  LiveCatalog(const LiveCatalog&) = delete;
  LiveCatalog& operator=(const LiveCatalog&) = delete;

  // The catalog to serve a call from. Never blocks.
  std::shared_ptr<const Catalog> Current() const;
  // Reloads so far.
  uint64_t generation() const;

  // Asks the poller to check now and waits (blocks) until a check that
  // started after this call finished, at most `timeout`. No-op for a fixed
  // catalog.
  void RefreshNow(absl::Duration timeout);

 private:
  void Run();
  // One check: fingerprint, and a reload when it changed. On the poller.
  void PollOnce(Connection& conn, bool force);

  const Options options_;
  const bool live_;
  mutable Mutex mu_;
  std::shared_ptr<const Catalog> current_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<const Catalog>> retired_ ABSL_GUARDED_BY(mu_);
  std::string fingerprint_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t checks_started_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t checks_done_ ABSL_GUARDED_BY(mu_) = 0;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool force_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CondVar changed_;
  std::unique_ptr<Connection> conn_;  // the poller's
  std::thread thread_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_LIVE_CATALOG_H_
