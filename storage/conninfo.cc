#include "storage/conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace rowgate::storage {
namespace {

// A key=value value, quoted as libpq's parser reads it.
std::string Quote(absl::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace

absl::StatusOr<std::string> ConnInfoWithTimeouts(
    absl::string_view url, const DatabaseTimeouts& timeouts) {
  char* error = nullptr;
  const std::string text(url);
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(text.c_str(), &error), &PQconninfoFree);
  if (options == nullptr) {
    // libpq's parse errors name the offending syntax, not the values.
    std::string message = error != nullptr
                              ? std::string(absl::StripAsciiWhitespace(error))
                              : "out of memory";
    PQfreemem(error);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid database URL: ", message));
  }
  // Only what `url` sets has a value here (PQconninfoParse adds no
  // defaults), so the user's own settings are kept as given.
  std::string out;
  absl::flat_hash_set<std::string> given;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    given.insert(o->keyword);
    if (!out.empty()) out.push_back(' ');
    absl::StrAppend(&out, o->keyword, "=", Quote(o->val));
  }
  const int64_t connect_s =
      std::max<int64_t>(2, absl::ToInt64Seconds(timeouts.connect));
  // A dead peer of an idle connection is noticed within ~25 s, and data
  // unacknowledged for 10 s breaks the connection instead of the kernel's
  // ~15 minutes of retransmissions. Unix sockets ignore all of these.
  const std::pair<const char*, std::string> defaults[] = {
      {"connect_timeout", absl::StrCat(connect_s)},
      {"keepalives", "1"},
      {"keepalives_idle", "10"},
      {"keepalives_interval", "5"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "10000"},
  };
  for (const auto& [key, value] : defaults) {
    if (given.contains(key)) continue;
    if (!out.empty()) out.push_back(' ');
    absl::StrAppend(&out, key, "=", value);
  }
  return out;
}

}  // namespace rowgate::storage
