#include "storage/pg_error.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

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
    {"57014", absl::StatusCode::kCancelled},           // query_canceled
    {"57P01", absl::StatusCode::kUnavailable},         // admin_shutdown
    {"57P02", absl::StatusCode::kUnavailable},         // crash_shutdown
    {"57P03", absl::StatusCode::kUnavailable},         // cannot_connect_now
    {"55P03", absl::StatusCode::kUnavailable},         // lock_not_available
    {"53300", absl::StatusCode::kUnavailable},         // too_many_connections
    {"08", absl::StatusCode::kUnavailable},            // connection exception
    {"53", absl::StatusCode::kResourceExhausted},      // insufficient resources
    {"22", absl::StatusCode::kInvalidArgument},        // data exception
    {"23", absl::StatusCode::kFailedPrecondition},     // integrity violation
    {"42", absl::StatusCode::kInvalidArgument},        // syntax / access rule
    {"28", absl::StatusCode::kPermissionDenied},       // invalid authorization
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
      code, absl::StrCat("PostgreSQL: ", message, " (SQLSTATE ",
                         sqlstate.empty() ? "unknown" : sqlstate, ")"));
}

bool SqlStateBreaksConnection(absl::string_view sqlstate) {
  return absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57P");
}

}  // namespace rowgate::storage
