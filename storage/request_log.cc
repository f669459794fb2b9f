#include "storage/request_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "storage/catalog.h"

namespace rowgate::storage {
namespace {

// Attempts of EnsureTable when another process creates the same objects at
// the same moment (each loser sees a duplicate-object error once).
constexpr int kCreateAttempts = 5;

// Whether `status` came from PostgreSQL with this SQLSTATE (pg_error.cc
// ends every such message with "(SQLSTATE xxxxx)").
bool HasSqlState(const absl::Status& status, absl::string_view sqlstate) {
  return absl::EndsWith(status.message(),
                        absl::StrCat("(SQLSTATE ", sqlstate, ")"));
}

// The table is missing, its schema is, or the user may not use them.
bool IsMissingOrForbidden(const absl::Status& status) {
  return HasSqlState(status, "42501") ||  // insufficient_privilege
         HasSqlState(status, "42P01") ||  // undefined_table
         HasSqlState(status, "3F000");    // invalid_schema_name
}

// Another session created the object between our check and our CREATE:
// CREATE ... IF NOT EXISTS is not atomic against a concurrent creator.
bool IsDuplicateObject(const absl::Status& status) {
  return HasSqlState(status, "23505") ||  // unique index of a catalog
         HasSqlState(status, "42P06") ||  // duplicate_schema
         HasSqlState(status, "42P07") ||  // duplicate_table (and index)
         HasSqlState(status, "42710");    // duplicate_object
}

// bytea in PostgreSQL's hex input form.
std::string ByteaParam(absl::string_view bytes) {
  return absl::StrCat("\\x", absl::BytesToHexString(bytes));
}

// The bytes of a bytea read as text (bytea_output = hex, set per session).
absl::StatusOr<std::string> ByteaFromText(absl::string_view text) {
  if (!absl::ConsumePrefix(&text, "\\x") || text.size() % 2 != 0) {
    return absl::InternalError("request log: a stored answer is not hex");
  }
  return absl::HexStringToBytes(text);
}

// PostgreSQL's message without the statement excerpt it appends ("LINE 1:
// INSERT ..."): enough to name the missing grant.
absl::string_view FirstLine(absl::string_view message) {
  return message.substr(0, message.find('\n'));
}

// A request id as messages show it: quoted, non-printable bytes escaped
// (it is at most kMaxRequestIdBytes, so the message stays bounded).
std::string Quoted(absl::string_view request_id) {
  return absl::StrCat("\"", absl::CHexEscape(request_id), "\"");
}

// Ends the open transaction, whatever state it is in. Runs even after the
// caller's deadline (an unterminated transaction would swallow the worker's
// next statements); if ROLLBACK itself fails, the connection is closed,
// which makes the server roll back.
void Rollback(Connection& conn) {
  const absl::Time deadline = conn.deadline();
  conn.set_deadline(absl::InfiniteFuture());
  if (!conn.Execute("ROLLBACK", {}).ok()) conn.Disconnect();
  conn.set_deadline(deadline);
}

}  // namespace

RequestLog::RequestLog(std::string schema)
    : schema_(std::move(schema)),
      table_(absl::StrCat(schema_, ".request_log")),
      claim_sql_(absl::StrCat(
          "INSERT INTO ", table_,
          " (request_id, method, fingerprint) VALUES ($1::text, $2::text, "
          "sha256($3::bytea)) ON CONFLICT (request_id) DO NOTHING "
          "RETURNING 1")),
      stored_sql_(
          absl::StrCat("SELECT method, fingerprint = sha256($2::bytea), "
                       "response FROM ",
                       table_, " WHERE request_id = $1::text")),
      respond_sql_(absl::StrCat("UPDATE ", table_,
                                " SET response = $2::bytea WHERE request_id = "
                                "$1::text")),
      // SKIP LOCKED: two rowgates purging at once split the work instead of
      // waiting on each other.
      purge_sql_(absl::StrCat(
          "DELETE FROM ", table_,
          " WHERE request_id IN (SELECT request_id FROM ", table_,
          " WHERE created_at < now() - make_interval(secs => $1::float8) "
          "ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED)")) {}

absl::Status RequestLog::CheckRequestId(absl::string_view request_id) {
  if (request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id has ", request_id.size(), " bytes; at most ",
                     kMaxRequestIdBytes, " are allowed"));
  }
  if (absl::StrContains(request_id, '\0')) {
    return absl::InvalidArgumentError("request_id must not contain NUL bytes");
  }
  return absl::OkStatus();
}

absl::Status RequestLog::EnsureTable(Connection& conn) const {
  // Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
  // even when the schema exists, and an operator may have created the table
  // for a user that may not.
  const std::string exists_sql =
      "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
      "c.relnamespace WHERE n.nspname = $1::text AND c.relname = "
      "'request_log'";
  const std::string statements[] = {
      absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", schema_),
      absl::StrCat("CREATE TABLE IF NOT EXISTS ", table_,
                   " (request_id text PRIMARY KEY, method text NOT NULL, "
                   "fingerprint bytea NOT NULL, response bytea, "
                   "created_at timestamptz NOT NULL DEFAULT now())"),
      absl::StrCat("CREATE INDEX IF NOT EXISTS request_log_created_at ON ",
                   table_, " (created_at)"),
  };
  absl::Status last;
  for (int attempt = 0; attempt < kCreateAttempts; ++attempt) {
    absl::StatusOr<QueryResult> exists = conn.Execute(exists_sql, {schema_});
    if (!exists.ok()) return exists.status();
    if (exists->rows() > 0) return absl::OkStatus();
    last = absl::OkStatus();
    for (const std::string& sql : statements) {
      absl::StatusOr<QueryResult> done = conn.Execute(sql, {});
      if (!done.ok()) {
        last = done.status();
        break;
      }
    }
    if (last.ok()) return last;
    if (IsDuplicateObject(last)) continue;  // lost a race: look again
    if (HasSqlState(last, "42501")) {
      // Name the database and user, so the message is the fix.
      std::string database = "<database>", user = "<rowgate's user>";
      absl::StatusOr<QueryResult> who =
          conn.Execute("SELECT current_database(), current_user", {});
      if (who.ok() && who->rows() == 1) {
        database = QuoteIdentifier(who->text(0, 0));
        user = QuoteIdentifier(who->text(0, 1));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create ", table_, " (", FirstLine(last.message()),
          "); writes with a request_id are refused until it exists: GRANT "
          "CREATE ON DATABASE ",
          database, " TO ", user,
          ", or create it as an owner (README, Idempotent writes) and GRANT "
          "USAGE ON SCHEMA ",
          schema_, " TO ", user, "; GRANT SELECT, INSERT, UPDATE, DELETE ON ",
          table_, " TO ", user));
    }
    return last;
  }
  return last;
}

absl::StatusOr<RequestLog::Outcome> RequestLog::Run(
    Connection& conn, absl::string_view request_id, absl::string_view method,
    absl::string_view request, Write write) const {
  if (absl::Status s = CheckRequestId(request_id); !s.ok()) return s;
  if (request_id.empty()) {
    return absl::InvalidArgumentError("RequestLog::Run needs a request_id");
  }
  const std::string id(request_id);
  const std::string fingerprint =
      ByteaParam(absl::StrCat(method, absl::string_view("\0", 1), request));

  if (absl::StatusOr<QueryResult> begun = conn.Execute("BEGIN", {});
      !begun.ok()) {
    return begun.status();  // no transaction was opened
  }
  // The connection the transaction lives on: every statement up to COMMIT
  // must run on this backend (Connection reconnects after a break, and a
  // statement on a new backend would autocommit outside the transaction).
  const int backend = conn.backend_pid();
  auto same_backend = [&]() -> absl::Status {
    if (conn.backend_pid() == backend) return absl::OkStatus();
    return absl::UnavailableError(
        "lost the connection to PostgreSQL during the request's transaction; "
        "retry with the same request_id");
  };

  absl::StatusOr<QueryResult> claim =
      conn.Execute(claim_sql_, {id, std::string(method), fingerprint});
  if (!claim.ok()) {
    Rollback(conn);
    if (IsMissingOrForbidden(claim.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "request_id needs ", table_,
          ", which is missing or not writable by rowgate's database user (",
          FirstLine(claim.status().message()),
          "); create it (rowgate does at start-up when allowed to), GRANT "
          "USAGE ON SCHEMA ",
          schema_, " and SELECT, INSERT, UPDATE, DELETE ON ", table_,
          " to that user, or send the write without request_id"));
    }
    return claim.status();
  }

  if (claim->rows() == 0) {
    // Taken, by a committed transaction (the claim waited for it if it was
    // in flight). Its answer is read in this transaction, then nothing is
    // kept.
    absl::StatusOr<QueryResult> stored =
        conn.Execute(stored_sql_, {id, fingerprint});
    Rollback(conn);
    if (!stored.ok()) return stored.status();
    if (stored->rows() == 0) {
      // Purged between the conflict and the read: it had expired.
      return absl::AbortedError(absl::StrCat(
          "request_id ", Quoted(request_id),
          " expired while this call read it; retry with the same id"));
    }
    const absl::string_view stored_method = stored->text(0, 0);
    if (stored_method != method || stored->text(0, 1) != "t") {
      return absl::FailedPreconditionError(
          absl::StrCat("request_id ", Quoted(request_id),
                       " was already used for a different request (",
                       stored_method, "); a new write needs a new request_id"));
    }
    if (stored->is_null(0, 2)) {
      return absl::InternalError(absl::StrCat("request_id ", Quoted(request_id),
                                              " has no stored answer"));
    }
    absl::StatusOr<std::string> response = ByteaFromText(stored->text(0, 2));
    if (!response.ok()) return response.status();
    return Outcome{std::move(*response), /*replayed=*/true};
  }

  absl::StatusOr<std::string> response = write(conn);
  if (response.ok()) {
    if (absl::Status s = same_backend(); !s.ok()) response = s;
  }
  if (!response.ok()) {
    // Nothing recorded: a retry runs the write again.
    Rollback(conn);
    return response.status();
  }
  absl::StatusOr<QueryResult> recorded =
      conn.Execute(respond_sql_, {id, ByteaParam(*response)});
  absl::Status status = recorded.ok() ? same_backend() : recorded.status();
  if (status.ok()) {
    absl::StatusOr<QueryResult> committed = conn.Execute("COMMIT", {});
    if (committed.ok()) return Outcome{std::move(*response), false};
    // If the connection broke during COMMIT, the outcome is unknown to us;
    // a retry with the same id learns it safely.
    status = committed.status();
  }
  Rollback(conn);
  return status;
}

absl::StatusOr<int64_t> RequestLog::PurgeExpired(Connection& conn,
                                                 absl::Duration retention,
                                                 int limit) const {
  absl::StatusOr<QueryResult> result =
      conn.Execute(purge_sql_, {absl::StrCat(absl::ToDoubleSeconds(retention)),
                                absl::StrCat(std::max(1, limit))});
  if (!result.ok()) return result.status();
  return static_cast<int64_t>(result->affected_rows());
}

absl::Duration RequestLogPurger::IntervalFor(absl::Duration retention) {
  return std::clamp(retention / 10, absl::Milliseconds(100), absl::Minutes(1));
}

RequestLogPurger::RequestLogPurger(const RequestLog& log, Options options)
    : log_(log),
      options_(std::move(options)),
      conn_(options_.database_url, nullptr, options_.timeouts) {
  thread_ = std::thread([this] { Run(); });
}

RequestLogPurger::~RequestLogPurger() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  conn_.Interrupt();
  if (thread_.joinable()) thread_.join();
}

void RequestLogPurger::Run() {
  Connection& conn = conn_;
  int last_failed = -1;  // -1: no purge yet
  MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.Unlock();
    absl::Status status;
    while (true) {
      absl::StatusOr<int64_t> purged =
          log_.PurgeExpired(conn, options_.retention, options_.batch);
      if (!purged.ok()) {
        status = purged.status();
        break;
      }
      purged_.fetch_add(static_cast<uint64_t>(*purged),
                        std::memory_order_relaxed);
      if (*purged < options_.batch) break;
      MutexLock check(&mu_);
      if (stopping_) break;
    }
    const int failed = status.ok() ? 0 : 1;
    if (failed != last_failed && (failed == 1 || last_failed == 1) &&
        options_.on_change) {
      options_.on_change(status);
    }
    last_failed = failed;
    mu_.Lock();
    const absl::Time until = absl::Now() + options_.interval;
    while (!stopping_ && wake_.WaitWithDeadline(&mu_, until)) {
    }
  }
}

}  // namespace rowgate::storage
