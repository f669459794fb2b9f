#include "storage/pg_error.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "storage/value.h"

namespace rowgate::storage {
namespace {

struct SqlStateRule {
  absl::string_view prefix;  // a full SQLSTATE, or its two-character class
  absl::StatusCode code;
};

// Most specific first: full codes, then classes.
constexpr SqlStateRule kRules[] = {
    {"23505", absl::StatusCode::kAlreadyExists},       // unique_violation
    {"23503", absl::StatusCode::kFailedPrecondition},  // foreign_key_violation
    {"23514", absl::StatusCode::kFailedPrecondition},  // check_violation
    {"23P01", absl::StatusCode::kFailedPrecondition},  // exclusion_violation
    {"23502", absl::StatusCode::kInvalidArgument},     // not_null_violation
    {"40001", absl::StatusCode::kAborted},             // serialization_failure
    {"40P01", absl::StatusCode::kAborted},             // deadlock_detected
    {"42501", absl::StatusCode::kPermissionDenied},    // insufficient_privilege
    {"57014", absl::StatusCode::kCancelled},           // query_canceled
    {"57P01", absl::StatusCode::kUnavailable},         // admin_shutdown
    {"57P02", absl::StatusCode::kUnavailable},         // crash_shutdown
    {"57P03", absl::StatusCode::kUnavailable},         // cannot_connect_now
    {"55P03", absl::StatusCode::kUnavailable},         // lock_not_available
    {"53300", absl::StatusCode::kUnavailable},         // too_many_connections
    {"08", absl::StatusCode::kUnavailable},            // connection exception
    {"53", absl::StatusCode::kResourceExhausted},      // insufficient resources
    // The statement is too large or complex for PostgreSQL: the same request
    // can never succeed.
    {"54", absl::StatusCode::kInvalidArgument},     // program limit exceeded
    {"22", absl::StatusCode::kInvalidArgument},     // data exception
    {"23", absl::StatusCode::kFailedPrecondition},  // integrity violation
    {"42", absl::StatusCode::kInvalidArgument},     // syntax / access rule
    // rowgate's own credentials were refused: retrying cannot help until the
    // configuration is fixed.
    {"28", absl::StatusCode::kFailedPrecondition},     // invalid authorization
    {"3D000", absl::StatusCode::kFailedPrecondition},  // invalid_catalog_name
    {"40", absl::StatusCode::kAborted},                // transaction rollback
};

}  // namespace

absl::Status StatusFromSqlState(absl::string_view sqlstate,
                                absl::string_view message) {
  message = absl::StripAsciiWhitespace(message);
  // libpq prefixes the severity; callers do not need it.
  absl::ConsumePrefix(&message, "ERROR:");
  message = absl::StripLeadingAsciiWhitespace(message);
  absl::StatusCode code = absl::StatusCode::kInternal;
  for (const SqlStateRule& rule : kRules) {
    if (absl::StartsWith(sqlstate, rule.prefix)) {
      code = rule.code;
      break;
    }
  }
  return absl::Status(
      // PostgreSQL's messages may quote a whole value: bounded, so the
      // SQLSTATE stays in view.
      code,
      absl::StrCat("PostgreSQL: ", Abbreviate(message, 512), " (SQLSTATE ",
                   sqlstate.empty() ? "unknown" : sqlstate, ")"));
}

absl::Status ConnectFailureStatus(absl::string_view message) {
  message = absl::StripAsciiWhitespace(message);
  // libpq reports a refused login only as text (a connection attempt has no
  // result to carry an SQLSTATE); these are the server's messages for class
  // 28 (invalid authorization) and 3D000 (no such database).
  constexpr absl::string_view kRefusals[] = {
      "authentication failed",           // 28P01 password, peer, ident, ...
      "no pg_hba.conf entry",            // 28000
      "is not permitted to log in",      // 28000
      "password is required",            // 28000 (scram/md5 without one)
      "no password supplied",            // libpq: fe_sendauth
      "permission denied for database",  // 42501 on CONNECT
  };
  bool refused = absl::StrContains(message, "does not exist") &&
                 (absl::StrContains(message, "role \"") ||
                  absl::StrContains(message, "database \""));
  for (absl::string_view refusal : kRefusals) {
    refused = refused || absl::StrContains(message, refusal);
  }
  if (refused) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL refused rowgate's login (fix the database URL or the "
        "role; retrying will not help): ",
        message));
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to PostgreSQL: ", message));
}

bool SqlStateBreaksConnection(absl::string_view sqlstate) {
  return absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57P");
}

}  // namespace rowgate::storage
