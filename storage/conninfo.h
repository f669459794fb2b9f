// Bounds on how long rowgate waits for PostgreSQL, and the connection string
// that carries the network-level ones to libpq.
//
// A database host that stops answering (packets dropped, a proxy gone
// silent) must cost a caller seconds, not the minutes of the kernel's TCP
// retries, and must not hold up SIGTERM. libpq bounds the connect
// (connect_timeout) and notices a dead peer (TCP keepalives,
// tcp_user_timeout); PostgreSQL bounds a statement it is running
// (statement_timeout, set per session by Connection); Connection bounds the
// wait for an answer on its own side, for a server that is silent.
//
// Pure functions; thread-safe.
//
// Example:
//   DatabaseTimeouts timeouts{.connect = absl::Seconds(5)};
//   std::string conninfo = ConnInfoWithTimeouts(url, timeouts);
#ifndef ROWGATE_STORAGE_CONNINFO_H_
#define ROWGATE_STORAGE_CONNINFO_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rowgate::storage {

struct DatabaseTimeouts {
  // Most time one connection attempt may take (libpq connect_timeout, whole
  // seconds, at least 2: libpq's own minimum). Also bounds the session
  // set-up statements sent right after connecting.
  absl::Duration connect = absl::Seconds(5);
  // Most time PostgreSQL may run one statement, lock waits included
  // (statement_timeout); ZeroDuration: no bound beyond the caller's deadline.
  absl::Duration statement = absl::Seconds(30);
  // How long after a statement's bound (the caller's deadline or
  // `statement`) Connection waits for PostgreSQL to answer a cancel before
  // it closes the connection: the bound for a server that went silent.
  absl::Duration cancel_grace = absl::Seconds(1);
};

// `url` (a libpq URI, postgresql://..., or key=value string) as a key=value
// string with connect_timeout, keepalives and tcp_user_timeout added where
// `url` sets none of its own (the user's settings win). INVALID_ARGUMENT
// when libpq cannot parse `url`; the message never repeats a password.
absl::StatusOr<std::string> ConnInfoWithTimeouts(
    absl::string_view url, const DatabaseTimeouts& timeouts);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_CONNINFO_H_
