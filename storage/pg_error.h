// The one place where PostgreSQL errors become absl::Status codes.
//
// Follows abseil's guide for choosing a code: UNAVAILABLE when just this call
// may be retried (connection lost, server shutting down), ABORTED when the
// caller should retry at a higher level (serialization failure, deadlock),
// FAILED_PRECONDITION when the database state must change first (foreign key,
// check) or rowgate's login is refused, ALREADY_EXISTS for a unique
// violation, PERMISSION_DENIED when rowgate's role may not touch a table,
// INVALID_ARGUMENT for a request that can never succeed (bad value, not-null
// violation, a statement beyond PostgreSQL's limits).
// Pure functions; thread-safe.
#ifndef ROWGATE_STORAGE_PG_ERROR_H_
#define ROWGATE_STORAGE_PG_ERROR_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rowgate::storage {

// Maps an SQLSTATE (e.g. "23505") and the server's message to a Status whose
// message carries PostgreSQL's text.
absl::Status StatusFromSqlState(absl::string_view sqlstate,
                                absl::string_view message);

// The status for a failed connection attempt, from libpq's message (which
// names host, user and database, never the password): FAILED_PRECONDITION
// when PostgreSQL refused the login (wrong password, unknown role or
// database, no pg_hba.conf entry), which no retry fixes; UNAVAILABLE when it
// could not be reached.
absl::Status ConnectFailureStatus(absl::string_view message);

// Whether an error with this SQLSTATE leaves the connection unusable.
bool SqlStateBreaksConnection(absl::string_view sqlstate);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_PG_ERROR_H_
