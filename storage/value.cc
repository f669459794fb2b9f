#include "storage/value.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rowgate::storage {
namespace {

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

// Reads `count` digits at text[pos]; false if they are not all digits.
bool ReadDigits(absl::string_view text, size_t& pos, size_t count,
                int64_t& out) {
  if (pos + count > text.size()) return false;
  out = 0;
  for (size_t i = 0; i < count; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += count;
  return true;
}

// Parses PostgreSQL's ISO output: "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]".
std::optional<Timestamp> ParseTimestamp(absl::string_view text) {
  size_t pos = 0;
  size_t year_digits = 0;
  while (year_digits < text.size() &&
         std::isdigit(static_cast<unsigned char>(text[year_digits]))) {
    ++year_digits;
  }
  // Past 6 digits the year is beyond every timestamp (see below), and 19
  // would overflow int64 while being read.
  if (year_digits < 4 || year_digits > 6) return std::nullopt;
  int64_t year, month, day, hour, minute, second;
  if (!ReadDigits(text, pos, year_digits, year)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != '-') return std::nullopt;
  if (!ReadDigits(text, pos, 2, month)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != '-') return std::nullopt;
  if (!ReadDigits(text, pos, 2, day)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != ' ') return std::nullopt;
  if (!ReadDigits(text, pos, 2, hour)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != ':') return std::nullopt;
  if (!ReadDigits(text, pos, 2, minute)) return std::nullopt;
  if (pos >= text.size() || text[pos++] != ':') return std::nullopt;
  if (!ReadDigits(text, pos, 2, second)) return std::nullopt;
  int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() &&
           std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (digits < 6) micros = micros * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    for (; digits < 6; ++digits) micros *= 10;
  }
  int64_t offset_seconds = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int64_t oh = 0, om = 0, os = 0;
    if (!ReadDigits(text, pos, 2, oh)) return std::nullopt;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!ReadDigits(text, pos, 2, om)) return std::nullopt;
      if (pos < text.size() && text[pos] == ':') {
        ++pos;
        if (!ReadDigits(text, pos, 2, os)) return std::nullopt;
      }
    }
    offset_seconds = sign * (oh * 3600 + om * 60 + os);
  }
  if (pos != text.size()) return std::nullopt;  // e.g. " BC"
  // Beyond ~292,000 AD the microseconds overflow int64; PostgreSQL goes to
  // 294276 AD. Such values are kept as text.
  if (year > 292000) return std::nullopt;
  const int64_t days = DaysFromCivil(year, static_cast<unsigned>(month),
                                     static_cast<unsigned>(day));
  const int64_t seconds =
      days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return Timestamp{seconds * kMicrosPerSecond + micros};
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::Status WrongKind(absl::string_view column, ColumnType type,
                       const Value& value) {
  return absl::InvalidArgumentError(
      absl::StrCat("column \"", Abbreviate(column), "\" takes ",
                   ValueKindName(type), ", not ", ValueKindName(value)));
}

absl::Status OutOfRange(absl::string_view column, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("value ", what, " is out of range for column \"",
                   Abbreviate(column), "\""));
}

bool IsUuid(absl::string_view text) {
  // 8-4-4-4-12 hex digits, or 32 hex digits without hyphens.
  std::string hex;
  for (char c : text) {
    if (c == '-') continue;
    if (HexDigit(c) < 0) return false;
    hex.push_back(c);
  }
  return hex.size() == 32;
}

std::string CanonicalUuid(absl::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c != '-') hex.push_back(absl::ascii_tolower(c));
  }
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-",
                      hex.substr(12, 4), "-", hex.substr(16, 4), "-",
                      hex.substr(20, 12));
}

}  // namespace

ColumnType ColumnTypeFromTypname(absl::string_view t) {
  if (t == "int2") return ColumnType::kInt16;
  if (t == "int4") return ColumnType::kInt32;
  if (t == "int8") return ColumnType::kInt64;
  if (t == "float4") return ColumnType::kFloat32;
  if (t == "float8") return ColumnType::kFloat64;
  if (t == "numeric") return ColumnType::kNumeric;
  if (t == "text" || t == "varchar" || t == "bpchar" || t == "name" ||
      t == "citext") {
    return ColumnType::kText;
  }
  if (t == "bool") return ColumnType::kBool;
  if (t == "bytea") return ColumnType::kBytes;
  if (t == "timestamp") return ColumnType::kTimestamp;
  if (t == "timestamptz") return ColumnType::kTimestampTz;
  if (t == "date") return ColumnType::kDate;
  if (t == "uuid") return ColumnType::kUuid;
  if (t == "json") return ColumnType::kJson;
  if (t == "jsonb") return ColumnType::kJsonb;
  return ColumnType::kOther;
}

absl::string_view ValueKindName(ColumnType type) {
  switch (type) {
    case ColumnType::kInt16:
    case ColumnType::kInt32:
    case ColumnType::kInt64:
      return "int64_value";
    case ColumnType::kFloat32:
    case ColumnType::kFloat64:
      return "double_value";
    case ColumnType::kBool:
      return "bool_value";
    case ColumnType::kBytes:
      return "bytes_value";
    case ColumnType::kTimestamp:
    case ColumnType::kTimestampTz:
      return "timestamp_value";
    default:
      return "string_value";
  }
}

absl::string_view ValueKindName(const Value& value) {
  switch (value.index()) {
    case 0:
      return "null_value";
    case 1:
      return "int64_value";
    case 2:
      return "double_value";
    case 3:
      return "string_value";
    case 4:
      return "bool_value";
    case 5:
      return "bytes_value";
    default:
      return "timestamp_value";
  }
}

Value ParseText(ColumnType type, absl::string_view text) {
  switch (type) {
    case ColumnType::kInt16:
    case ColumnType::kInt32:
    case ColumnType::kInt64: {
      int64_t v;
      if (absl::SimpleAtoi(text, &v)) return v;
      break;
    }
    case ColumnType::kFloat32:
    case ColumnType::kFloat64: {
      // strtod reads "NaN", "Infinity" and "-Infinity" too.
      std::string copy(text);
      char* end = nullptr;
      const double v = std::strtod(copy.c_str(), &end);
      if (end != copy.c_str() && *end == '\0') return v;
      break;
    }
    case ColumnType::kBool:
      if (text == "t") return true;
      if (text == "f") return false;
      break;
    case ColumnType::kBytes:
      if (text.size() >= 2 && text[0] == '\\' && text[1] == 'x' &&
          text.size() % 2 == 0) {
        Bytes out;
        out.data.reserve((text.size() - 2) / 2);
        for (size_t i = 2; i < text.size(); i += 2) {
          const int hi = HexDigit(text[i]), lo = HexDigit(text[i + 1]);
          if (hi < 0 || lo < 0) return std::string(text);
          out.data.push_back(static_cast<char>(hi * 16 + lo));
        }
        return out;
      }
      break;
    case ColumnType::kTimestamp:
    case ColumnType::kTimestampTz:
      if (auto ts = ParseTimestamp(text)) return *ts;
      break;
    default:
      break;
  }
  return std::string(text);
}

std::string FormatTimestamp(Timestamp ts) {
  int64_t days = ts.micros / kMicrosPerDay;
  int64_t rem = ts.micros % kMicrosPerDay;
  if (rem < 0) {
    rem += kMicrosPerDay;
    --days;
  }
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, year, month, day);
  const int64_t secs = rem / kMicrosPerSecond;
  return absl::StrFormat("%04d-%02d-%02d %02d:%02d:%02d.%06d", year, month, day,
                         secs / 3600, (secs / 60) % 60, secs % 60,
                         rem % kMicrosPerSecond);
}

absl::StatusOr<std::optional<std::string>> ToParameter(absl::string_view column,
                                                       ColumnType type,
                                                       const Value& value) {
  if (std::holds_alternative<std::monostate>(value)) return std::nullopt;
  // Parameters travel as C strings, and PostgreSQL text cannot hold NUL:
  // refuse rather than silently cut the value short.
  if (const std::string* text = std::get_if<std::string>(&value);
      text != nullptr && text->find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the value for column \"", Abbreviate(column),
        "\" contains a NUL byte, which PostgreSQL text cannot store"));
  }
  switch (type) {
    case ColumnType::kInt16:
    case ColumnType::kInt32:
    case ColumnType::kInt64: {
      const int64_t* v = std::get_if<int64_t>(&value);
      if (v == nullptr) return WrongKind(column, type, value);
      const int64_t limit = type == ColumnType::kInt16   ? 32767
                            : type == ColumnType::kInt32 ? 2147483647
                                                         : 0;
      if (limit != 0 && (*v > limit || *v < -limit - 1)) {
        return OutOfRange(column, absl::StrCat(*v, type == ColumnType::kInt16
                                                       ? " (smallint)"
                                                       : " (integer)"));
      }
      return absl::StrCat(*v);
    }
    case ColumnType::kFloat32:
    case ColumnType::kFloat64:
      if (const double* v = std::get_if<double>(&value)) {
        if (type == ColumnType::kFloat32 && std::isfinite(*v) &&
            std::fabs(*v) > std::numeric_limits<float>::max()) {
          return OutOfRange(column, absl::StrCat(*v, " (real)"));
        }
        if (std::isnan(*v)) return std::string("NaN");
        if (std::isinf(*v)) {
          return std::string(*v > 0 ? "Infinity" : "-Infinity");
        }
        return absl::StrFormat("%.17g", *v);
      }
      if (const int64_t* v = std::get_if<int64_t>(&value)) {
        return absl::StrCat(*v);
      }
      return WrongKind(column, type, value);
    case ColumnType::kNumeric:
      if (const std::string* v = std::get_if<std::string>(&value)) return *v;
      if (const int64_t* v = std::get_if<int64_t>(&value)) {
        return absl::StrCat(*v);
      }
      if (const double* v = std::get_if<double>(&value)) {
        // "%.17g" would print "nan"/"inf"; a double that is not a number
        // is not an exact decimal either.
        if (!std::isfinite(*v)) {
          return OutOfRange(column, absl::StrCat(*v, " (numeric)"));
        }
        return absl::StrFormat("%.17g", *v);
      }
      return WrongKind(column, type, value);
    case ColumnType::kBool:
      if (const bool* v = std::get_if<bool>(&value)) {
        return std::string(*v ? "true" : "false");
      }
      return WrongKind(column, type, value);
    case ColumnType::kBytes:
      if (const Bytes* v = std::get_if<Bytes>(&value)) {
        static constexpr char kHex[] = "0123456789abcdef";
        std::string out = "\\x";
        out.reserve(2 + v->data.size() * 2);
        for (unsigned char c : v->data) {
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        }
        return out;
      }
      return WrongKind(column, type, value);
    case ColumnType::kTimestamp:
    case ColumnType::kTimestampTz:
      if (const Timestamp* v = std::get_if<Timestamp>(&value)) {
        if (v->micros < kMinTimestampMicros) {
          return OutOfRange(column, "(timestamp before 0001-01-01)");
        }
        std::string text = FormatTimestamp(*v);
        if (type == ColumnType::kTimestampTz) text += "+00";
        return text;
      }
      if (const std::string* v = std::get_if<std::string>(&value)) return *v;
      return WrongKind(column, type, value);
    case ColumnType::kDate:
      if (const Timestamp* v = std::get_if<Timestamp>(&value)) {
        if (v->micros < kMinTimestampMicros) {
          return OutOfRange(column, "(date before 0001-01-01)");
        }
        std::string text = FormatTimestamp(*v);
        return text.substr(0, text.find(' '));
      }
      if (const std::string* v = std::get_if<std::string>(&value)) return *v;
      return WrongKind(column, type, value);
    case ColumnType::kUuid:
    case ColumnType::kText:
    case ColumnType::kJson:
    case ColumnType::kJsonb:
    case ColumnType::kOther:
      if (const std::string* v = std::get_if<std::string>(&value)) return *v;
      return WrongKind(column, type, value);
  }
  return WrongKind(column, type, value);
}

bool IsKeyType(ColumnType type) {
  switch (type) {
    case ColumnType::kInt16:
    case ColumnType::kInt32:
    case ColumnType::kInt64:
    case ColumnType::kText:
    case ColumnType::kUuid:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::string> CanonicalKey(absl::string_view column,
                                         ColumnType type, const Value& value) {
  if (!IsKeyType(type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", Abbreviate(column),
                     "\" cannot be a lookup key: its type is not an "
                     "integer, text or uuid type"));
  }
  if (std::holds_alternative<std::monostate>(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a key for column \"", Abbreviate(column), "\" is null or unset"));
  }
  if (type == ColumnType::kUuid) {
    const std::string* v = std::get_if<std::string>(&value);
    if (v == nullptr) return WrongKind(column, type, value);
    if (!IsUuid(*v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", Abbreviate(*v), "\" for column \"",
                       Abbreviate(column), "\" is not a uuid"));
    }
    return CanonicalUuid(*v);
  }
  absl::StatusOr<std::optional<std::string>> text =
      ToParameter(column, type, value);
  if (!text.ok()) return text.status();
  if (!text->has_value()) {  // unreachable: nulls were refused above
    return absl::InvalidArgumentError(absl::StrCat(
        "a key for column \"", Abbreviate(column), "\" is null or unset"));
  }
  return std::move(**text);
}

std::string Abbreviate(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so no character is
  // split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return absl::StrCat(text.substr(0, cut), "\xE2\x80\xA6(", text.size(),
                      " bytes)");
}

std::string KeyText(const Value& value) {
  if (const int64_t* v = std::get_if<int64_t>(&value)) return absl::StrCat(*v);
  if (const std::string* v = std::get_if<std::string>(&value)) return *v;
  return std::string();
}

std::string ArrayLiteral(const std::vector<std::string>& elements) {
  std::string out = "{";
  for (size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : elements[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace rowgate::storage
