// One PostgreSQL connection and the statements run on it.
//
// Connects lazily on first use and again after the connection broke, so a
// restarted or briefly unreachable Postgres heals without a restart of
// rowgate. Each distinct statement text is prepared once per connection (up
// to a bound; rarer shapes then run unprepared). Every statement runs in
// autocommit mode: rowgate's writes are single statements, atomic by
// themselves, and a lookup costs one round trip. (RequestLog, for writes
// with a request id, sends BEGIN/COMMIT as statements of their own.)
//
// Not thread-safe: libpqxx's rule is one thread per connection at a time.
// WorkerPool gives each of its threads a Connection of its own. Interrupt()
// is the exception: any thread may call it. Every other method blocks on the
// network.
//
// Example:
//   Connection conn(url);
//   absl::StatusOr<QueryResult> r =
//       conn.Execute("SELECT name FROM users WHERE id = $1::bigint", {"42"});
#ifndef ROWGATE_STORAGE_CONNECTION_H_
#define ROWGATE_STORAGE_CONNECTION_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/conninfo.h"
#include "storage/deadline_watchdog.h"
#include "storage/mutex.h"

namespace rowgate::storage {

// Statement parameters in PostgreSQL text form; std::nullopt is SQL NULL.
using Params = std::vector<std::optional<std::string>>;

// The rows a statement returned, read as text. Cheap to copy (shared).
class QueryResult {
 public:
  QueryResult();
  int rows() const;
  int columns() const;
  bool is_null(int row, int column) const;
  absl::string_view text(int row, int column) const;
  // Calls `visit(column, text, is_null)` for every cell of `row`, in column
  // order: one pass, much cheaper than text()/is_null() per cell.
  void VisitRow(
      int row,
      absl::FunctionRef<void(int column, absl::string_view text, bool is_null)>
          visit) const;
  // Rows changed by an INSERT/UPDATE/DELETE.
  long affected_rows() const;

 private:
  friend class Connection;
  struct Rep;
  explicit QueryResult(std::shared_ptr<const Rep> rep);
  std::shared_ptr<const Rep> rep_;
};

// Statements that failed since the process started, by the
// absl::StatusCode their error maps to (index = code). Process-wide;
// thread-safe; for metrics.
std::array<uint64_t, 17> DatabaseErrorCounts();

// Makes every Connection drop its prepared statements before its next
// statement outside a transaction: the schema changed (LiveCatalog), and a
// statement prepared for the old shape could fail ("cached plan must not
// change result type") or just hold a slot. Thread-safe; never blocks.
void InvalidatePreparedStatements();

// Called (on the failing statement's thread, after the error) when a
// statement fails the way a stale catalog makes it fail: SQLSTATE 42703
// (undefined column), 42P01 (undefined table) or 0A000 (cached plan
// changed). LiveCatalog sets it to reload at once; it may block (bounded).
// Set it before any statement runs; null: none.
void SetSchemaErrorHook(std::function<void()> hook);

// Lets another thread end, early, the statements a Connection runs on its
// behalf: the loader's query whose every caller went away (cancelled) need
// not hold its connection until it finishes or its deadline passes. Attach
// it with Connection::set_statement_cancel. Cancel() then cancels the
// statement running (the server is asked, as at a deadline: the connection
// stays usable) and any later one before it is sent; they answer
// CANCELLED.
//
// Thread-safe. Cancel() never blocks, so a gRPC thread may call it.
class StatementCancel {
 public:
  void Cancel();
  bool cancelled() const;

 private:
  friend class Connection;
  // The running statement's alarm on `watchdog` (see Connection), or 0.
  // Returns false when cancelled already (the statement is not sent).
  bool Attach(DeadlineWatchdog* watchdog, uint64_t alarm);
  void Detach();

  mutable Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  DeadlineWatchdog* watchdog_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t alarm_ ABSL_GUARDED_BY(mu_) = 0;
};

class Connection {
 public:
  // `url` is a libpq connection string or URI. Does not connect. Statements
  // honour set_deadline() and `timeouts`, timed by `watchdog` (which must
  // outlive this; its callbacks here never block) or, when null, by one
  // shared by the process.
  explicit Connection(std::string url, DeadlineWatchdog* watchdog = nullptr,
                      DatabaseTimeouts timeouts = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement with bound parameters. UNAVAILABLE when Postgres
  // cannot be reached or stops answering (the next call reconnects);
  // DEADLINE_EXCEEDED past the deadline or the statement timeout; other
  // errors as mapped by pg_error.h. Blocks: connecting at most
  // timeouts.connect, then until the statement's bound (the deadline, else
  // timeouts.statement) plus timeouts.cancel_grace.
  absl::StatusOr<QueryResult> Execute(const std::string& sql,
                                      const Params& params);

  // Statements run from now on must finish by `deadline`: one that is still
  // running then is cancelled on the server and answers DEADLINE_EXCEEDED,
  // and one that would start after it is not sent. InfiniteFuture: none.
  void set_deadline(absl::Time deadline) { deadline_ = deadline; }
  // A bound on every deadline from now on, whatever set_deadline says (the
  // pool's drain at shutdown). InfiniteFuture: none.
  void set_deadline_cap(absl::Time cap) { deadline_cap_ = cap; }

  // Statements run from now on may be ended early through `cancel` (not
  // owned; must outlive its use here); null: none. ROLLBACK is exempt: it
  // is how a cancelled transaction ends. Not thread-safe (set it between
  // statements, from the thread that runs them).
  void set_statement_cancel(StatementCancel* cancel) { early_ = cancel; }

  // The deadline statements honour now (set_deadline's, within the cap).
  absl::Time deadline() const { return std::min(deadline_, deadline_cap_); }

  // Closes the connection (the next statement reconnects), e.g. when a
  // transaction could not be rolled back: the server then rolls it back.
  void Disconnect();

  // Connects now if not connected. Blocks, at most timeouts.connect plus
  // timeouts.cancel_grace.
  absl::Status EnsureConnected();

  // Closes the connection under the statement in progress, if any (it
  // answers UNAVAILABLE), and makes every later statement answer UNAVAILABLE
  // without being sent: for a pool that must stop by a time. Thread-safe;
  // never blocks.
  void Interrupt();

  // The backend's process id, or 0 when not connected.
  int backend_pid() const;

 private:
  absl::StatusOr<QueryResult> ExecuteOnce(const std::string& sql,
                                          const Params& params);
  // Drops this connection's prepared statements if the schema changed
  // since they were prepared, unless a transaction is open.
  void MaybeDropPrepared();

  struct State;
  std::string url_;
  DeadlineWatchdog* const watchdog_;
  const DatabaseTimeouts timeouts_;
  absl::Time deadline_ = absl::InfiniteFuture();
  absl::Time deadline_cap_ = absl::InfiniteFuture();
  StatementCancel* early_ = nullptr;
  std::unique_ptr<State> state_;
  // Set by Interrupt(); a duplicate of the socket under the statement in
  // progress (-1: none), which Interrupt() shuts down.
  Mutex interrupt_mu_;
  bool interrupted_ ABSL_GUARDED_BY(interrupt_mu_) = false;
  int statement_fd_ ABSL_GUARDED_BY(interrupt_mu_) = -1;
};

// Attaches `cancel` to `conn` (Connection::set_statement_cancel) for its
// scope: the statements a call runs on a worker's connection, and none of
// the next call's.
class ScopedStatementCancel {
 public:
  ScopedStatementCancel(Connection& conn, StatementCancel* cancel)
      : conn_(conn) {
    conn_.set_statement_cancel(cancel);
  }
  ~ScopedStatementCancel() { conn_.set_statement_cancel(nullptr); }
  ScopedStatementCancel(const ScopedStatementCancel&) = delete;
  ScopedStatementCancel& operator=(const ScopedStatementCancel&) = delete;

 private:
  Connection& conn_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_CONNECTION_H_
