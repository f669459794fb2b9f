// Idempotent writes: runs a write at most once per client-chosen request id,
// and answers a retry of it with the first answer.
//
// The log is a table rowgate owns, outside the served schema (so the catalog
// never serves it):
//   <schema>.request_log(request_id text PRIMARY KEY, method text,
//                        fingerprint bytea, response bytea, created_at)
// An id is recorded in the SAME PostgreSQL transaction as the write it
// guards, so the two commit or vanish together: a retry after a lost reply,
// a SIGKILL of rowgate or a failover finds either both (and gets the stored
// answer) or neither (and runs the write again). A failed write records
// nothing. With an id, Run() sends
//   BEGIN
//   INSERT INTO log (id, method, fingerprint) ... ON CONFLICT DO NOTHING
//   -- claimed: the write's statements, then
//   UPDATE log SET response = ...; COMMIT
//   -- not claimed: SELECT the stored method, fingerprint and response;
//   ROLLBACK; compare
// Two concurrent calls with the same new id are serialised by the primary
// key: the second INSERT blocks until the first transaction ends, then
// conflicts (first committed: its answer is returned) or claims the id
// (first rolled back: this one writes). So exactly one write commits.
//
// The fingerprint is sha256(method, NUL, request bytes), computed by
// PostgreSQL (no crypto library in rowgate): 32 bytes per id whatever the
// request's size. The caller passes the request's deterministic
// serialization without its id; a retry whose bytes differ is refused with
// FAILED_PRECONDITION (see Run()).
//
// Writes without an id do not come here: they stay single autocommit
// statements, one round trip, exactly as fast as before.
//
// Thread-safe (immutable after construction); each Connection is used by one
// thread at a time, as always. Every method that takes a Connection blocks
// on it. RequestLogPurger runs the bounded purge on a thread of its own.
//
// Example:
//   RequestLog log;  // rowgate.request_log
//   absl::StatusOr<RequestLog::Outcome> out = log.Run(
//       conn, id, "Insert", request_bytes,
//       [&](Connection& c) -> absl::StatusOr<std::string> { ... });
#ifndef ROWGATE_STORAGE_REQUEST_LOG_H_
#define ROWGATE_STORAGE_REQUEST_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/connection.h"
#include "storage/mutex.h"

namespace rowgate::storage {

class RequestLog {
 public:
  // The schema of the log unless told otherwise; --schema may not name it.
  static constexpr absl::string_view kDefaultSchema = "rowgate";
  // Longest request id accepted, in bytes.
  static constexpr size_t kMaxRequestIdBytes = 128;

  // The answer of a write: its serialized response, and whether it came from
  // the log (a retry; the write did not run) rather than from running it.
  struct Outcome {
    std::string response;
    bool replayed = false;
  };
  // Runs the write's statements on the connection it is given, inside the
  // transaction; returns the serialized response to store. Must not commit
  // or roll back.
  using Write = absl::FunctionRef<absl::StatusOr<std::string>(Connection&)>;

  // `schema`: an SQL identifier of lowercase letters, digits and '_'
  // (checked by the caller; kDefaultSchema in production).
  explicit RequestLog(std::string schema = std::string(kDefaultSchema));

  // "rowgate.request_log", for messages.
  const std::string& table() const { return table_; }

  // INVALID_ARGUMENT unless `request_id` fits kMaxRequestIdBytes and holds
  // no NUL byte (PostgreSQL text cannot). Empty is valid: "no id". Pure.
  static absl::Status CheckRequestId(absl::string_view request_id);

  // Creates the schema, table and index if missing (CREATE ... IF NOT
  // EXISTS, retried when another rowgate creates them at the same moment).
  // FAILED_PRECONDITION, naming the grants needed, when the database user
  // may not. Idempotent. Blocks.
  absl::Status EnsureTable(Connection& conn) const;

  // Runs `write` once for `request_id` (non-empty, checked) as described
  // above. `method` names the RPC ("Insert"); `request` is the request's
  // deterministic serialization with the id cleared. Returns:
  // - the write's answer, committed together with the id;
  // - on a retry with the same method and request, the stored answer;
  // - FAILED_PRECONDITION when the id was used for a different request
  //   (abseil: the request itself is valid, but the system's state, the id
  //   being taken, refuses it until the client picks a new id; retrying it
  //   unchanged cannot help, so not ABORTED or UNAVAILABLE);
  // - FAILED_PRECONDITION when the log table is missing or not writable;
  // - the write's own error (nothing recorded), or the database's.
  // Blocks; the second of two concurrent calls with one id waits for the
  // first's transaction.
  absl::StatusOr<Outcome> Run(Connection& conn, absl::string_view request_id,
                              absl::string_view method,
                              absl::string_view request, Write write) const;

  // Deletes up to `limit` ids older than `retention`, oldest first; returns
  // how many. Bounded work per call (an index on created_at). Blocks.
  absl::StatusOr<int64_t> PurgeExpired(Connection& conn,
                                       absl::Duration retention,
                                       int limit) const;

 private:
  const std::string schema_;
  const std::string table_;
  const std::string claim_sql_;
  const std::string stored_sql_;
  const std::string respond_sql_;
  const std::string purge_sql_;
};

// Purges expired ids in the background: every `interval`, PurgeExpired()
// in batches of `batch` until a batch comes back short (a backlog is worked
// off in bounded steps; the database is never asked for more than `batch`
// rows per statement). Its own thread and connection: never a gRPC thread or
// a request's worker.
//
// Thread-safe. The destructor stops the thread (waiting for a statement in
// progress) and must not run on it.
class RequestLogPurger {
 public:
  struct Options {
    std::string database_url;
    // Bounds on its connection, as for every other (a purge caught by a
    // silent database must not hold up shutdown).
    DatabaseTimeouts timeouts;
    absl::Duration retention = absl::Hours(24);
    absl::Duration interval = absl::Minutes(1);
    int batch = 1000;
    // Called on the purger's thread when a purge fails after succeeding (or
    // at the first failure), and once it works again (OkStatus), so a log
    // shows changes, not one line per interval.
    absl::AnyInvocable<void(const absl::Status&)> on_change;
  };

  // The interval for a retention: a tenth of it, within [100 ms, 1 min], so
  // an id outlives its retention by at most ~10%, and at most a minute.
  static absl::Duration IntervalFor(absl::Duration retention);

  // Starts the thread; the first purge runs at once. `log` must outlive
  // this. Never blocks.
  RequestLogPurger(const RequestLog& log, Options options);
  ~RequestLogPurger();
  RequestLogPurger(const RequestLogPurger&) = delete;
  RequestLogPurger& operator=(const RequestLogPurger&) = delete;

  // Ids deleted so far (for tests and metrics).
  uint64_t purged() const { return purged_.load(std::memory_order_relaxed); }

 private:
  void Run();

  const RequestLog& log_;
  Options options_;
  // Used by the purger's thread only, but for Interrupt() at destruction: a
  // purge caught by a database that stopped answering ends at once.
  Connection conn_;
  std::atomic<uint64_t> purged_{0};
  // As in WorkerPool: visible to ThreadSanitizer (see storage/mutex.h).
  Mutex mu_;
  CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_REQUEST_LOG_H_
