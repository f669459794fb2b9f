// Structured logs: one JSON object per line on stderr.
// Thread-safe (each line is written with a single write()).
//
// Example:
//   Log(LogLevel::kInfo, "serving", {{"listen", address}});
#ifndef ROWGATE_SERVICE_LOG_H_
#define ROWGATE_SERVICE_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace rowgate::service {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below `level` are dropped. Default: kInfo.
void SetLogLevel(LogLevel level);
bool ParseLogLevel(absl::string_view text, LogLevel* level);

void Log(LogLevel level, absl::string_view message,
         std::initializer_list<std::pair<absl::string_view, std::string>>
             fields = {});

// `url` with any password replaced by "***" (URI and key=value forms).
std::string MaskDatabaseUrl(absl::string_view url);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_LOG_H_
