#include "storage/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <pqxx/pqxx>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "storage/pg_error.h"

namespace rowgate::storage {
namespace {

// Distinct statement texts prepared per connection. Lookups, inserts of a
// few row counts and updates of common column sets stay well below it;
// ad-hoc Page filter shapes beyond it run unprepared.
constexpr size_t kMaxPreparedStatements = 256;

// Session settings rowgate's conversions rely on: timestamptz printed in UTC
// and the ISO date style that value.cc parses.
constexpr char kSessionSetup[] =
    "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; "
    "SET application_name = 'rowgate'; SET bytea_output = 'hex'";

std::array<std::atomic<uint64_t>, 17> error_counts{};

// Bumped by InvalidatePreparedStatements; each connection remembers the
// value its prepared statements were made under.
std::atomic<uint64_t> prepared_generation{0};

// SetSchemaErrorHook's hook. Leaked: connections of exiting threads may
// still call it.
Mutex& HookMutex() {
  static Mutex* mu = new Mutex();
  return *mu;
}
std::function<void()>& Hook() {
  static auto* hook = new std::function<void()>();
  return *hook;
}

// PostgreSQL's words for a prepared statement whose result columns changed
// under it (SQLSTATE 0A000): nothing ran, so running it again is safe.
constexpr absl::string_view kPlanChanged =
    "cached plan must not change result type";

bool IsSchemaErrorState(absl::string_view sqlstate) {
  return sqlstate == "42703" || sqlstate == "42P01" || sqlstate == "0A000";
}

// Cancel requests still waiting for a server's answer. libpq 15's PQcancel
// has no timeout, so a cancel sent to a silent server runs on a thread of
// its own (see PoliteCancel); beyond this many, the hard cutoff alone
// bounds the statement.
constexpr int kMaxRunningCancels = 32;
// How soon a cancel request is sent again while its statement still runs
// (see PoliteCancel), doubling up to the most.
constexpr absl::Duration kFirstCancelResend = absl::Milliseconds(10);
constexpr absl::Duration kMaxCancelResend = absl::Milliseconds(200);
std::atomic<int> running_cancels{0};

// Times statements of connections made without a watchdog (the health
// check's, the catalog's). Its callbacks never block. Leaked on purpose: it
// must outlive every connection, including those of exiting threads.
DeadlineWatchdog& SharedWatchdog() {
  static DeadlineWatchdog* watchdog = new DeadlineWatchdog();
  return *watchdog;
}

// Closes the connection's socket for both directions once `at` passes, so
// that libpq's blocking wait for an answer returns (as a broken connection)
// even when the server never sends one. On a duplicate of the descriptor:
// libpq may close its own meanwhile, and a number reused by another
// connection must never be shut down. Disarmed (or destroyed) before the
// connection is touched again.
class Cutoff {
 public:
  Cutoff(DeadlineWatchdog& watchdog, const pqxx::connection& conn,
         absl::Time at)
      : watchdog_(watchdog), fd_(dup(conn.sock())) {
    if (at == absl::InfiniteFuture() || fd_ < 0) return;
    alarm_ = watchdog_.Arm(at, [fd = fd_] { shutdown(fd, SHUT_RDWR); });
  }
  ~Cutoff() { Disarm(); }
  // The duplicate descriptor (-1 if dup failed), valid until Disarm.
  int fd() const { return fd_; }
  Cutoff(const Cutoff&) = delete;
  Cutoff& operator=(const Cutoff&) = delete;

  // True when the socket was closed.
  bool Disarm() {
    if (alarm_ != 0) fired_ = !watchdog_.Disarm(alarm_);
    alarm_ = 0;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return fired_;
  }

 private:
  DeadlineWatchdog& watchdog_;
  int fd_;
  uint64_t alarm_ = 0;
  bool fired_ = false;
};

// Asks the server to cancel the statement running on `conn` once `at`
// passes: the polite way, which keeps the connection. The request runs on a
// short-lived thread that shares ownership of the connection, so the
// watchdog never blocks on it and a request that a silent server never
// answers can be abandoned (with the connection) rather than waited for.
//
// PostgreSQL drops a cancel request that finds the backend idle, so one
// that overtakes its statement (still being sent, or being prepared first)
// would be lost and the statement would run to its bound. The thread
// therefore sends the request again, less and less often, until Disarm says
// the statement has ended.
class PoliteCancel {
 public:
  // `always_arm`: even without a deadline (InfiniteFuture), for a
  // StatementCancel to expedite.
  PoliteCancel(DeadlineWatchdog& watchdog,
               std::shared_ptr<pqxx::connection> conn, absl::Time at,
               bool always_arm = false)
      : watchdog_(watchdog), sender_(std::make_shared<Sender>()) {
    if (at == absl::InfiniteFuture() && !always_arm) return;
    alarm_ = watchdog_.Arm(at, [conn = std::move(conn), sender = sender_] {
      if (running_cancels.fetch_add(1) >= kMaxRunningCancels) {
        running_cancels.fetch_sub(1);
        sender->done.Notify();
        return;
      }
      std::thread([conn, sender] {
        for (absl::Duration pause = kFirstCancelResend;;
             pause = std::min(pause * 2, kMaxCancelResend)) {
          try {
            conn->cancel_query();
          } catch (const std::exception&) {
            // The statement may have ended meanwhile; nothing to cancel.
          }
          if (sender->ended.WaitForNotificationWithTimeout(pause)) break;
        }
        running_cancels.fetch_sub(1);
        sender->done.Notify();
      }).detach();
    });
  }
  ~PoliteCancel() { Disarm(absl::InfinitePast()); }
  uint64_t alarm() const { return alarm_; }
  PoliteCancel(const PoliteCancel&) = delete;
  PoliteCancel& operator=(const PoliteCancel&) = delete;

  // Disarms the alarm and stops the resending; if the cancel was sent,
  // waits (blocks) until `until` for the last request to be taken, so that
  // none can hit a later statement. Returns whether the cancel was sent,
  // and sets `*abandon` when it was not taken in time: the connection must
  // not be used again.
  bool Disarm(absl::Time until, bool* abandon = nullptr) {
    if (alarm_ == 0) return fired_;
    fired_ = !watchdog_.Disarm(alarm_);
    alarm_ = 0;
    sender_->ended.Notify();
    if (fired_ && !sender_->done.WaitForNotificationWithDeadline(until) &&
        abandon != nullptr) {
      *abandon = true;
    }
    return fired_;
  }

 private:
  // Shared with the thread that sends the requests.
  struct Sender {
    absl::Notification ended;  // the statement ended (Disarm): stop sending
    absl::Notification done;   // stopped sending (or never started)
  };
  DeadlineWatchdog& watchdog_;
  const std::shared_ptr<Sender> sender_;
  uint64_t alarm_ = 0;
  bool fired_ = false;
};

absl::Status CallersGone() {
  return absl::CancelledError(
      "every caller of the statement went away: it was cancelled");
}

absl::Status ShuttingDown() {
  return absl::UnavailableError(
      "rowgate is shutting down: the statement was not completed");
}

absl::Time Later(absl::Time t, absl::Duration d) {
  return t == absl::InfiniteFuture() ? t : t + d;
}

// The error's SQLSTATE. libpqxx 6.4 throws some of its sql_error subclasses
// without one (e.g. insufficient_privilege): the class tells the code's
// class, most specific first.
std::string SqlStateOf(const pqxx::sql_error& e) {
  if (!e.sqlstate().empty()) return e.sqlstate();
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e)) return "42501";
  if (dynamic_cast<const pqxx::undefined_column*>(&e)) return "42703";
  if (dynamic_cast<const pqxx::undefined_function*>(&e)) return "42883";
  if (dynamic_cast<const pqxx::undefined_table*>(&e)) return "42P01";
  if (dynamic_cast<const pqxx::syntax_error*>(&e)) return "42601";
  if (dynamic_cast<const pqxx::unique_violation*>(&e)) return "23505";
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e)) return "23503";
  if (dynamic_cast<const pqxx::not_null_violation*>(&e)) return "23502";
  if (dynamic_cast<const pqxx::check_violation*>(&e)) return "23514";
  if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e)) {
    return "23000";
  }
  if (dynamic_cast<const pqxx::data_exception*>(&e)) return "22000";
  if (dynamic_cast<const pqxx::feature_not_supported*>(&e)) return "0A000";
  if (dynamic_cast<const pqxx::insufficient_resources*>(&e)) return "53000";
  return "";
}

// The SQLSTATE of a transaction rollback, which libpqxx 6.4 reports as an
// exception class only.
std::string RollbackSqlState(const pqxx::transaction_rollback& e) {
  if (dynamic_cast<const pqxx::serialization_failure*>(&e)) return "40001";
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e)) return "40P01";
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e)) {
    return "40003";
  }
  return "40000";
}

}  // namespace

void InvalidatePreparedStatements() {
  prepared_generation.fetch_add(1, std::memory_order_relaxed);
}

void SetSchemaErrorHook(std::function<void()> hook) {
  MutexLock lock(&HookMutex());
  Hook() = std::move(hook);
}

std::array<uint64_t, 17> DatabaseErrorCounts() {
  std::array<uint64_t, 17> out;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = error_counts[i].load(std::memory_order_relaxed);
  }
  return out;
}

struct QueryResult::Rep {
  pqxx::result result;
};

QueryResult::QueryResult() : rep_(std::make_shared<Rep>()) {}
QueryResult::QueryResult(std::shared_ptr<const Rep> rep)
    : rep_(std::move(rep)) {}
int QueryResult::rows() const { return static_cast<int>(rep_->result.size()); }
int QueryResult::columns() const {
  return static_cast<int>(rep_->result.columns());
}
bool QueryResult::is_null(int row, int column) const {
  return rep_->result[row][column].is_null();
}
absl::string_view QueryResult::text(int row, int column) const {
  const pqxx::field field = rep_->result[row][column];
  return absl::string_view(field.c_str(), field.size());
}
void QueryResult::VisitRow(
    int row,
    absl::FunctionRef<void(int, absl::string_view, bool)> visit) const {
  // One iterator, moved along the row: each pqxx::row, field and iterator
  // holds a copy of the result (two shared_ptr), so building end() per cell,
  // as `it != cells.end()` in the loop did, cost four atomic operations per
  // cell.
  const pqxx::row cells = rep_->result[row];
  const int columns = static_cast<int>(cells.size());
  auto it = cells.begin();
  for (int column = 0; column < columns; ++column, ++it) {
    visit(column, absl::string_view(it->c_str(), it->size()), it->is_null());
  }
}

long QueryResult::affected_rows() const {
  return static_cast<long>(rep_->result.affected_rows());
}

struct Connection::State {
  // Shared only with a cancel request in flight (PoliteCancel).
  std::shared_ptr<pqxx::connection> conn;
  absl::flat_hash_map<std::string, std::string> prepared;  // sql -> name
  uint64_t next_name = 0;  // names are never reused on one session
  // prepared_generation when `prepared` was last emptied.
  uint64_t generation = prepared_generation.load(std::memory_order_relaxed);
  // Between a BEGIN and its COMMIT/ROLLBACK (sent through Execute).
  bool in_transaction = false;
  // Whether ExecuteOnce's statement reached the server: a COMMIT or
  // ROLLBACK refused before it was sent leaves the transaction open.
  bool sent = false;
  // Set by ExecuteOnce: the statement failed as a stale catalog makes it
  // fail; and whether running it again is safe (a re-planned statement).
  bool schema_error = false;
  bool replan = false;

  void Reset() {
    conn.reset();
    prepared.clear();
    in_transaction = false;
    generation = prepared_generation.load(std::memory_order_relaxed);
  }
};

Connection::Connection(std::string url, DeadlineWatchdog* watchdog,
                       DatabaseTimeouts timeouts)
    : watchdog_(watchdog != nullptr ? watchdog : &SharedWatchdog()),
      timeouts_(timeouts),
      state_(std::make_unique<State>()) {
  // A URL libpq cannot parse is kept as given: connecting then fails with
  // libpq's own explanation.
  absl::StatusOr<std::string> conninfo = ConnInfoWithTimeouts(url, timeouts);
  url_ = conninfo.ok() ? *std::move(conninfo) : std::move(url);
}

Connection::~Connection() = default;

int Connection::backend_pid() const {
  return state_->conn ? state_->conn->backendpid() : 0;
}

void Connection::Disconnect() { state_->Reset(); }

void Connection::MaybeDropPrepared() {
  if (state_->in_transaction ||
      state_->generation ==
          prepared_generation.load(std::memory_order_relaxed)) {
    return;
  }
  // A fresh session rather than DEALLOCATE per statement: bounded by the
  // connect timeout, and once per connection per migration.
  state_->Reset();
}

absl::Status Connection::EnsureConnected() {
  if (state_->conn && state_->conn->is_open()) return absl::OkStatus();
  state_->Reset();
  const absl::Time start = absl::Now();
  try {
    // libpq gives up after connect_timeout; the set-up statements get as
    // long again, then the socket is closed under them.
    auto conn = std::make_shared<pqxx::connection>(url_);
    Cutoff cutoff(*watchdog_, *conn,
                  absl::Now() + timeouts_.connect + timeouts_.cancel_grace);
    std::string setup = kSessionSetup;
    if (timeouts_.statement > absl::ZeroDuration()) {
      absl::StrAppend(&setup, "; SET statement_timeout = ",
                      absl::ToInt64Milliseconds(timeouts_.statement));
    }
    pqxx::nontransaction txn(*conn);
    txn.exec(setup);
    txn.commit();
    if (cutoff.Disarm()) {
      return absl::UnavailableError(absl::StrCat(
          "PostgreSQL accepted the connection but did not answer within ",
          absl::FormatDuration(timeouts_.connect + timeouts_.cancel_grace)));
    }
    state_->conn = std::move(conn);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    // libpq's connection errors name the host and socket, never a password.
    const absl::Duration took = absl::Now() - start;
    if (took >= timeouts_.connect) {
      return absl::UnavailableError(
          absl::StrCat("PostgreSQL did not answer within the connect timeout (",
                       absl::FormatDuration(timeouts_.connect),
                       "): ", absl::StripAsciiWhitespace(e.what())));
    }
    return ConnectFailureStatus(e.what());
  }
}

void Connection::Interrupt() {
  MutexLock lock(&interrupt_mu_);
  interrupted_ = true;
  if (statement_fd_ >= 0) shutdown(statement_fd_, SHUT_RDWR);
}

absl::StatusOr<QueryResult> Connection::Execute(const std::string& sql,
                                                const Params& params) {
  MaybeDropPrepared();
  state_->schema_error = state_->replan = false;
  absl::StatusOr<QueryResult> result = ExecuteOnce(sql, params);
  const bool schema_error = state_->schema_error;
  // Re-planned once: its prepared form was dropped by ExecuteOnce.
  if (!result.ok() && state_->replan) result = ExecuteOnce(sql, params);
  if (sql == "BEGIN") {
    state_->in_transaction = result.ok();
  } else if ((sql == "COMMIT" || sql == "ROLLBACK") && state_->sent) {
    state_->in_transaction = false;
  }
  if (schema_error) {
    std::function<void()> hook;
    {
      MutexLock lock(&HookMutex());
      hook = Hook();
    }
    if (hook) hook();
  }
  if (!result.ok()) {
    const size_t code = static_cast<size_t>(result.status().code());
    if (code < error_counts.size()) {
      error_counts[code].fetch_add(1, std::memory_order_relaxed);
    }
  }
  return result;
}

void StatementCancel::Cancel() {
  MutexLock lock(&mu_);
  cancelled_ = true;
  if (alarm_ != 0) watchdog_->Expedite(alarm_);
}

bool StatementCancel::cancelled() const {
  MutexLock lock(&mu_);
  return cancelled_;
}

bool StatementCancel::Attach(DeadlineWatchdog* watchdog, uint64_t alarm) {
  MutexLock lock(&mu_);
  if (cancelled_) return false;
  watchdog_ = watchdog;
  alarm_ = alarm;
  return true;
}

void StatementCancel::Detach() {
  MutexLock lock(&mu_);
  alarm_ = 0;
}

absl::StatusOr<QueryResult> Connection::ExecuteOnce(const std::string& sql,
                                                    const Params& params) {
  state_->sent = false;
  const absl::Time deadline = std::min(deadline_, deadline_cap_);
  if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
    return absl::DeadlineExceededError(
        "the caller's deadline passed before the statement was sent");
  }
  {
    MutexLock lock(&interrupt_mu_);
    if (interrupted_) return ShuttingDown();
  }
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  // Two bounds. At the caller's deadline the server is asked to cancel the
  // statement (the connection stays usable); PostgreSQL's statement_timeout
  // bounds it without a deadline. If the server answers neither within
  // cancel_grace, the socket is closed under the statement: a silent server
  // costs the caller its deadline plus the grace, never a hang.
  const absl::Time sent = absl::Now();
  absl::Time bound = deadline;
  if (timeouts_.statement > absl::ZeroDuration()) {
    bound = std::min(bound, sent + timeouts_.statement);
  }
  const absl::Time cutoff_at = Later(bound, timeouts_.cancel_grace);
  Cutoff cutoff(*watchdog_, *state_->conn, cutoff_at);
  {
    MutexLock lock(&interrupt_mu_);
    if (interrupted_) return ShuttingDown();
    statement_fd_ = cutoff.fd();
  }
  // ROLLBACK is how a cancelled transaction ends: never refused, never
  // cancelled, or the connection would be closed for want of it.
  StatementCancel* const early = sql == "ROLLBACK" ? nullptr : early_;
  PoliteCancel cancel(*watchdog_, state_->conn, deadline,
                      /*always_arm=*/early != nullptr);
  if (early != nullptr && !early->Attach(watchdog_, cancel.alarm())) {
    cancel.Disarm(absl::InfinitePast());
    MutexLock lock(&interrupt_mu_);
    statement_fd_ = -1;
    return CallersGone();
  }
  bool cancelled = false;
  bool abandon = false;
  bool interrupted = false;
  auto disarm = [&] {
    if (early != nullptr) early->Detach();
    // A cancel asked for early is sent at once: wait for it like one sent
    // at the deadline, so that it cannot hit a later statement.
    const absl::Time cancel_wait =
        early != nullptr && early->cancelled()
            ? absl::Now() + timeouts_.cancel_grace
            : Later(deadline, timeouts_.cancel_grace);
    cancelled = cancel.Disarm(cancel_wait, &abandon);
    {
      MutexLock lock(&interrupt_mu_);
      statement_fd_ = -1;
      interrupted = interrupted_;
    }
    return cutoff.Disarm() || interrupted;
  };
  auto drop_connection = [&] { state_->Reset(); };
  std::vector<const char*> raw;
  raw.reserve(params.size());
  for (const auto& p : params) raw.push_back(p ? p->c_str() : nullptr);
  auto dynamic = pqxx::prepare::make_dynamic_params(raw);
  auto rep = std::make_shared<QueryResult::Rep>();
  bool was_prepared = false;
  try {
    state_->sent = true;
    pqxx::nontransaction txn(*state_->conn);
    auto it = state_->prepared.find(sql);
    if (it == state_->prepared.end() &&
        state_->prepared.size() < kMaxPreparedStatements) {
      std::string name = absl::StrCat("rg", state_->next_name++);
      state_->conn->prepare(name, sql);
      it = state_->prepared.emplace(sql, std::move(name)).first;
    }
    was_prepared = it != state_->prepared.end();
    if (it != state_->prepared.end()) {
      rep->result = txn.exec_prepared(it->second, dynamic);
    } else {
      rep->result = txn.exec_params(sql, dynamic);
    }
    txn.commit();
    const bool cut = disarm();
    if (cut || abandon) drop_connection();
  } catch (const pqxx::broken_connection& e) {
    const bool cut = disarm();
    drop_connection();
    if (interrupted) return ShuttingDown();
    if (cut) {
      return absl::UnavailableError(
          absl::StrCat("PostgreSQL did not answer within ",
                       absl::FormatDuration(absl::Trunc(cutoff_at - sent,
                                                        absl::Milliseconds(1))),
                       "; closed the connection"));
    }
    return absl::UnavailableError(
        absl::StrCat("lost the connection to PostgreSQL: ",
                     absl::StripAsciiWhitespace(e.what())));
  } catch (const pqxx::sql_error& e) {
    const bool cut = disarm();
    const std::string sqlstate = SqlStateOf(e);
    if (cut || abandon || SqlStateBreaksConnection(sqlstate) ||
        !state_->conn->is_open()) {
      drop_connection();
    }
    if (IsSchemaErrorState(sqlstate)) state_->schema_error = true;
    if (sqlstate == "0A000" && was_prepared && !state_->in_transaction &&
        absl::StrContains(e.what(), kPlanChanged) && state_->conn) {
      // The table's columns changed under the prepared statement; it did
      // not run. Prepared anew under another name, it runs once more (the
      // old one is freed with the session at the next invalidation).
      state_->prepared.erase(sql);
      state_->replan = true;
    }
    if (sqlstate == "57014") {
      if (cancelled && early != nullptr && early->cancelled()) {
        return CallersGone();
      }
      if (cancelled) {
        return absl::DeadlineExceededError(
            "the statement was cancelled in PostgreSQL: the caller's "
            "deadline passed");
      }
      if (absl::StrContains(e.what(), "statement timeout")) {
        return absl::DeadlineExceededError(absl::StrCat(
            "PostgreSQL cancelled the statement: it ran longer than the "
            "statement timeout (",
            absl::FormatDuration(timeouts_.statement), ")"));
      }
    }
    return StatusFromSqlState(sqlstate, e.what());
  } catch (const pqxx::transaction_rollback& e) {
    // libpqxx 6.4 derives these from pqxx::failure, not sql_error: without
    // this they fell through to INTERNAL and dropped a healthy connection,
    // where the caller should be told to retry (ABORTED, SQLSTATE class 40).
    if (disarm() || abandon) drop_connection();
    return StatusFromSqlState(RollbackSqlState(e), e.what());
  } catch (const std::exception& e) {
    disarm();
    // E.g. pqxx::usage_error or in_doubt_error: drop the connection rather
    // than reuse one in an unknown state.
    drop_connection();
    return absl::InternalError(absl::StrCat("PostgreSQL client: ", e.what()));
  }
  return QueryResult(std::move(rep));
}

}  // namespace rowgate::storage
