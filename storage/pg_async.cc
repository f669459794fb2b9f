#include "storage/pg_async.h"

#include <poll.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "storage/pg_error.h"

namespace rowgate::storage {
namespace {

// Waits until `fd` can be read (or written), `wake_fd` is readable, or
// `deadline` passes.
absl::Status Wait(int fd, bool write, int wake_fd, absl::Time deadline) {
  pollfd fds[2] = {{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0},
                   {wake_fd, POLLIN, 0}};
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError("PostgreSQL did not answer in time");
    }
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(
                       std::min(left, absl::Seconds(60)))) +
                   1;
    const int n = poll(fds, 2, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("poll: errno ", errno));
    }
    if (fds[1].revents != 0) return absl::CancelledError("stopping");
    if (fds[0].revents != 0) return absl::OkStatus();
  }
}

}  // namespace

std::string ErrorText(PGconn* conn) {
  if (conn == nullptr) return "no connection";
  return std::string(absl::StripAsciiWhitespace(PQerrorMessage(conn)));
}

std::optional<Lsn> ParseLsn(absl::string_view text) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits('/', 1));
  uint32_t hi = 0, lo = 0;
  if (parts.first.empty() || parts.second.empty() ||
      !absl::SimpleHexAtoi(parts.first, &hi) ||
      !absl::SimpleHexAtoi(parts.second, &lo)) {
    return std::nullopt;
  }
  return (static_cast<Lsn>(hi) << 32) | lo;
}

absl::StatusOr<PgConn> ConnectAsync(
    const std::string& conninfo,
    const std::vector<std::pair<std::string, std::string>>& extra, int wake_fd,
    absl::Duration timeout) {
  // Later keywords win over those of the expanded dbname string.
  std::vector<const char*> keys = {"dbname"};
  std::vector<const char*> values = {conninfo.c_str()};
  for (const auto& [key, value] : extra) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConn conn(PQconnectStartParams(keys.data(), values.data(), 1));
  if (conn == nullptr) {
    return absl::ResourceExhaustedError(
        "libpq could not allocate a "
        "connection");
  }
  if (PQstatus(conn.get()) == CONNECTION_BAD) {
    return ConnectFailureStatus(ErrorText(conn.get()));
  }
  const absl::Time deadline = absl::Now() + timeout;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK) {
    if (state == PGRES_POLLING_FAILED) {
      return ConnectFailureStatus(ErrorText(conn.get()));
    }
    absl::Status s = Wait(PQsocket(conn.get()), state == PGRES_POLLING_WRITING,
                          wake_fd, deadline);
    if (!s.ok()) return s;
    state = PQconnectPoll(conn.get());
  }
  if (PQsetnonblocking(conn.get(), 1) != 0) {
    return absl::UnavailableError(ErrorText(conn.get()));
  }
  return conn;
}

absl::StatusOr<PgResult> Exec(PGconn* conn, const std::string& sql,
                              const std::vector<std::string>& params,
                              int wake_fd, absl::Time deadline,
                              std::string* sqlstate) {
  int sent;
  if (params.empty()) {
    sent = PQsendQuery(conn, sql.c_str());
  } else {
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    sent = PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()),
                             nullptr, values.data(), nullptr, nullptr, 0);
  }
  if (!sent) return absl::UnavailableError(ErrorText(conn));
  for (;;) {
    const int f = PQflush(conn);
    if (f == 0) break;
    if (f < 0) return absl::UnavailableError(ErrorText(conn));
    absl::Status s = Wait(PQsocket(conn), true, wake_fd, deadline);
    if (!s.ok()) return s;
  }
  PgResult last;
  absl::Status error;
  for (;;) {
    while (PQisBusy(conn)) {
      absl::Status s = Wait(PQsocket(conn), false, wake_fd, deadline);
      if (!s.ok()) return s;
      if (!PQconsumeInput(conn)) return absl::UnavailableError(ErrorText(conn));
    }
    PgResult r(PQgetResult(conn));
    if (r == nullptr) break;
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COPY_BOTH) return r;
    if (status == PGRES_FATAL_ERROR && error.ok()) {
      const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
      const char* message =
          PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
      if (sqlstate != nullptr) *sqlstate = state ? state : "";
      error = StatusFromSqlState(state ? state : "",
                                 message ? message : ErrorText(conn));
    }
    last = std::move(r);
  }
  if (!error.ok()) return error;
  if (last == nullptr) return absl::UnavailableError(ErrorText(conn));
  return last;
}

}  // namespace rowgate::storage
