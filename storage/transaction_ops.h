// Runs several statements as one PostgreSQL transaction on a connection:
// BEGIN, the caller's statements, COMMIT; ROLLBACK when any of them fails.
// For Transact (service/transact_handler.cc); RequestLog::Run opens its own
// transaction the same way for writes with a request id.
//
// Statements run on the connection that BEGIN ran on: if it breaks midway,
// Connection reconnects on the next statement, which would then run outside
// the transaction on a new backend. Every statement is therefore checked
// to have run on the same backend (the server rolled the old one back).
//
// A free function; blocks on the connection, which one thread uses at a
// time.
#ifndef ROWGATE_STORAGE_TRANSACTION_OPS_H_
#define ROWGATE_STORAGE_TRANSACTION_OPS_H_

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "storage/connection.h"

namespace rowgate::storage {

// Checks that statements still run on the backend a transaction began on.
class BackendGuard {
 public:
  explicit BackendGuard(const Connection& conn)
      : conn_(conn), backend_(conn.backend_pid()) {}
  // UNAVAILABLE once the connection was lost (and maybe replaced) since
  // construction: the transaction is gone, nothing of it committed.
  absl::Status Check() const;

 private:
  const Connection& conn_;
  const int backend_;
};

// BEGIN; body(conn, guard); COMMIT. `body` runs its statements on `conn`
// and must not commit or roll back. Returns body's error (after ROLLBACK:
// nothing it did stays) or COMMIT's. If the connection breaks during
// COMMIT the outcome is unknown: UNAVAILABLE says so (a retry with a
// request_id learns it safely). ROLLBACK runs even past the deadline; if it
// fails, the connection is closed, which makes the server roll back.
absl::Status RunInTransaction(
    Connection& conn,
    absl::FunctionRef<absl::Status(Connection&, const BackendGuard&)> body);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_TRANSACTION_OPS_H_
