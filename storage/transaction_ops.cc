#include "storage/transaction_ops.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace rowgate::storage {
namespace {

// As request_log.cc's: ends the open transaction whatever state it is in.
void Rollback(Connection& conn) {
  const absl::Time deadline = conn.deadline();
  conn.set_deadline(absl::InfiniteFuture());
  if (!conn.Execute("ROLLBACK", {}).ok()) conn.Disconnect();
  conn.set_deadline(deadline);
}

}  // namespace

absl::Status BackendGuard::Check() const {
  if (conn_.backend_pid() == backend_ && backend_ != 0) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      "lost the connection to PostgreSQL during the transaction; nothing of "
      "it was committed");
}

absl::Status RunInTransaction(
    Connection& conn,
    absl::FunctionRef<absl::Status(Connection&, const BackendGuard&)> body) {
  if (absl::StatusOr<QueryResult> begun = conn.Execute("BEGIN", {});
      !begun.ok()) {
    return begun.status();  // no transaction was opened
  }
  const BackendGuard guard(conn);
  absl::Status status = body(conn, guard);
  if (status.ok()) status = guard.Check();
  if (!status.ok()) {
    Rollback(conn);
    return status;
  }
  absl::StatusOr<QueryResult> committed = conn.Execute("COMMIT", {});
  if (committed.ok()) return absl::OkStatus();
  // COMMIT failed (e.g. a deferred constraint, a serialization failure):
  // the transaction is over either way. A broken connection leaves its
  // outcome unknown.
  if (absl::IsUnavailable(committed.status())) {
    return absl::UnavailableError(absl::StrCat(
        "the connection broke during COMMIT: the transaction may or may not "
        "have committed (retry with a request_id to learn which): ",
        committed.status().message()));
  }
  Rollback(conn);
  return committed.status();
}

}  // namespace rowgate::storage
