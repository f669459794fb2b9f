// Raw libpq, driven without blocking: connecting and running a statement
// while also watching a wake-up descriptor, so a thread that waits on
// PostgreSQL can still be stopped at once. ChangeFeed uses it for its
// replication connection, which libpqxx 6.4 cannot open (the replication
// protocol's CopyBoth mode), and for its probes.
//
// Functions are thread-safe; a PGconn belongs to one thread at a time.
// Every wait returns CANCELLED as soon as `wake_fd` is readable.
#ifndef ROWGATE_STORAGE_PG_ASYNC_H_
#define ROWGATE_STORAGE_PG_ASYNC_H_

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/change_listener.h"

namespace rowgate::storage {

struct PgConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConn = std::unique_ptr<PGconn, PgConnCloser>;
struct PgResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultClearer>;

// Opens a connection to `conninfo` (a key=value string or URI), with
// `extra` keywords overriding it (e.g. {"replication", "database"}), in
// non-blocking mode. UNAVAILABLE or FAILED_PRECONDITION as
// ConnectFailureStatus says; UNAVAILABLE after `timeout`. Blocks.
absl::StatusOr<PgConn> ConnectAsync(
    const std::string& conninfo,
    const std::vector<std::pair<std::string, std::string>>& extra, int wake_fd,
    absl::Duration timeout);

// Runs `sql` (one statement; with `params` bound as text, else by the
// simple protocol, as the replication protocol needs) and returns its last
// result, or the first one in CopyBoth mode (START_REPLICATION). An SQL
// error maps by pg_error.h, with its SQLSTATE in `*sqlstate` when given;
// UNAVAILABLE when the connection broke or `deadline` passed (close the
// connection then: it may be mid-statement). Blocks.
absl::StatusOr<PgResult> Exec(PGconn* conn, const std::string& sql,
                              const std::vector<std::string>& params,
                              int wake_fd, absl::Time deadline,
                              std::string* sqlstate = nullptr);

// libpq's last error on `conn`, trimmed (never a password).
std::string ErrorText(PGconn* conn);

// Parses pg_lsn text ("16/B374D848").
std::optional<Lsn> ParseLsn(absl::string_view text);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_PG_ASYNC_H_
