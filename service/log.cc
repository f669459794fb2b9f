#include "service/log.h"

#include <unistd.h>

#include <atomic>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace rowgate::service {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

constexpr absl::string_view kLevelNames[] = {"debug", "info", "warning",
                                             "error"};

void AppendJsonString(std::string& out, absl::string_view text) {
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

}  // namespace

void SetLogLevel(LogLevel level) { min_level = static_cast<int>(level); }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  for (int i = 0; i < 4; ++i) {
    if (text == kLevelNames[i]) {
      *level = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void Log(
    LogLevel level, absl::string_view message,
    std::initializer_list<std::pair<absl::string_view, std::string>> fields) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed)) {
    return;
  }
  std::string line = "{\"time\":";
  AppendJsonString(line, absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                                          absl::UTCTimeZone()));
  line += ",\"level\":";
  AppendJsonString(line, kLevelNames[static_cast<int>(level)]);
  line += ",\"msg\":";
  AppendJsonString(line, message);
  for (const auto& [key, value] : fields) {
    line.push_back(',');
    AppendJsonString(line, key);
    line.push_back(':');
    AppendJsonString(line, value);
  }
  line += "}\n";
  // One write per line keeps lines whole across threads.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

std::string MaskDatabaseUrl(absl::string_view url) {
  std::string text(url);
  // postgresql://user:secret@host/db -> postgresql://user:***@host/db
  static const std::regex kUriPassword(R"(^([a-z]+://[^:/@]*):[^@]*@)");
  text = std::regex_replace(text, kUriPassword, "$1:***@");
  // password=secret (key=value form or URI query parameter)
  static const std::regex kKeyValue(R"((password\s*=\s*)('[^']*'|[^\s&]*))");
  return std::regex_replace(text, kKeyValue, "$1***");
}

}  // namespace rowgate::service
