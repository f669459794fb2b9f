#include "storage/connection.h"

#include <atomic>
#include <pqxx/pqxx>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
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
  const pqxx::row cells = rep_->result[row];
  int column = 0;
  for (auto it = cells.begin(); it != cells.end(); ++it, ++column) {
    visit(column, absl::string_view(it->c_str(), it->size()), it->is_null());
  }
}

long QueryResult::affected_rows() const {
  return static_cast<long>(rep_->result.affected_rows());
}

struct Connection::State {
  std::unique_ptr<pqxx::connection> conn;
  absl::flat_hash_map<std::string, std::string> prepared;  // sql -> name
};

Connection::Connection(std::string url, DeadlineWatchdog* watchdog)
    : url_(std::move(url)),
      watchdog_(watchdog),
      state_(std::make_unique<State>()) {}

Connection::~Connection() = default;

int Connection::backend_pid() const {
  return state_->conn ? state_->conn->backendpid() : 0;
}

void Connection::Disconnect() {
  state_->conn.reset();
  state_->prepared.clear();
}

absl::Status Connection::EnsureConnected() {
  if (state_->conn && state_->conn->is_open()) return absl::OkStatus();
  state_->conn.reset();
  state_->prepared.clear();
  try {
    auto conn = std::make_unique<pqxx::connection>(url_);
    pqxx::nontransaction txn(*conn);
    txn.exec(kSessionSetup);
    txn.commit();
    state_->conn = std::move(conn);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    // libpq's connection errors name the host and socket, never a password.
    return ConnectFailureStatus(e.what());
  }
}

absl::StatusOr<QueryResult> Connection::Execute(const std::string& sql,
                                                const Params& params) {
  absl::StatusOr<QueryResult> result = ExecuteOnce(sql, params);
  if (!result.ok()) {
    const size_t code = static_cast<size_t>(result.status().code());
    if (code < error_counts.size()) {
      error_counts[code].fetch_add(1, std::memory_order_relaxed);
    }
  }
  return result;
}

absl::StatusOr<QueryResult> Connection::ExecuteOnce(const std::string& sql,
                                                    const Params& params) {
  if (deadline_ != absl::InfiniteFuture() && absl::Now() >= deadline_) {
    return absl::DeadlineExceededError(
        "the caller's deadline passed before the statement was sent");
  }
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  // Cancels the statement on the server if it outlives the caller's
  // deadline. Disarmed (waiting for a cancel in progress) before the
  // connection is touched again.
  uint64_t alarm = 0;
  bool cancelled = false;
  auto disarm = [&] {
    if (alarm != 0) cancelled = !watchdog_->Disarm(alarm);
    alarm = 0;
  };
  std::vector<const char*> raw;
  raw.reserve(params.size());
  for (const auto& p : params) raw.push_back(p ? p->c_str() : nullptr);
  auto dynamic = pqxx::prepare::make_dynamic_params(raw);
  auto rep = std::make_shared<QueryResult::Rep>();
  try {
    pqxx::nontransaction txn(*state_->conn);
    auto it = state_->prepared.find(sql);
    if (it == state_->prepared.end() &&
        state_->prepared.size() < kMaxPreparedStatements) {
      std::string name = absl::StrCat("rg", state_->prepared.size());
      state_->conn->prepare(name, sql);
      it = state_->prepared.emplace(sql, std::move(name)).first;
    }
    if (watchdog_ != nullptr && deadline_ != absl::InfiniteFuture()) {
      pqxx::connection* conn = state_->conn.get();
      alarm = watchdog_->Arm(deadline_, [conn] {
        try {
          conn->cancel_query();
        } catch (const std::exception&) {
          // The statement may have ended meanwhile; nothing to cancel.
        }
      });
    }
    if (it != state_->prepared.end()) {
      rep->result = txn.exec_prepared(it->second, dynamic);
    } else {
      rep->result = txn.exec_params(sql, dynamic);
    }
    disarm();
    txn.commit();
  } catch (const pqxx::broken_connection& e) {
    disarm();
    state_->conn.reset();
    state_->prepared.clear();
    return absl::UnavailableError(
        absl::StrCat("lost the connection to PostgreSQL: ",
                     absl::StripAsciiWhitespace(e.what())));
  } catch (const pqxx::sql_error& e) {
    disarm();
    if (SqlStateBreaksConnection(SqlStateOf(e)) || !state_->conn->is_open()) {
      state_->conn.reset();
      state_->prepared.clear();
    }
    if (cancelled && e.sqlstate() == "57014") {
      return absl::DeadlineExceededError(
          "the statement was cancelled in PostgreSQL: the caller's deadline "
          "passed");
    }
    return StatusFromSqlState(SqlStateOf(e), e.what());
  } catch (const pqxx::transaction_rollback& e) {
    // libpqxx 6.4 derives these from pqxx::failure, not sql_error: without
    // this they fell through to INTERNAL and dropped a healthy connection,
    // where the caller should be told to retry (ABORTED, SQLSTATE class 40).
    disarm();
    return StatusFromSqlState(RollbackSqlState(e), e.what());
  } catch (const std::exception& e) {
    disarm();
    // E.g. pqxx::usage_error or in_doubt_error: drop the connection rather
    // than reuse one in an unknown state.
    state_->conn.reset();
    state_->prepared.clear();
    return absl::InternalError(absl::StrCat("PostgreSQL client: ", e.what()));
  }
  return QueryResult(std::move(rep));
}

}  // namespace rowgate::storage
