#include "storage/page_token.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"

namespace rowgate::storage {
namespace {

constexpr char kMagic[] = {'R', 'G', '1'};

void PutFixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}
  bool Fixed64(uint64_t& v) {
    if (data_.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(data_[i]))
           << (8 * i);
    }
    data_.remove_prefix(8);
    return true;
  }
  bool Varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (data_.empty()) return false;
      const unsigned char b = data_[0];
      data_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool Byte(unsigned char& b) {
    if (data_.empty()) return false;
    b = data_[0];
    data_.remove_prefix(1);
    return true;
  }
  bool String(std::string& s) {
    uint64_t n;
    if (!Varint(n) || n > data_.size()) return false;
    s.assign(data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }
  bool Prefix(absl::string_view p) {
    if (data_.substr(0, p.size()) != p) return false;
    data_.remove_prefix(p.size());
    return true;
  }
  bool done() const { return data_.empty(); }

 private:
  absl::string_view data_;
};

absl::Status Malformed() {
  return absl::InvalidArgumentError(
      "page_token is malformed: pass next_page_token from a previous Page "
      "response unchanged");
}

}  // namespace

uint64_t Fingerprint(absl::string_view description) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : description) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string EncodePageToken(const PageCursor& cursor) {
  std::string raw(kMagic, sizeof(kMagic));
  PutFixed64(raw, cursor.query_fingerprint);
  PutVarint(raw, cursor.last_sort_values.size());
  for (const Value& v : cursor.last_sort_values) {
    raw.push_back(static_cast<char>(v.index()));
    switch (v.index()) {
      case 1:
        PutFixed64(raw, static_cast<uint64_t>(std::get<int64_t>(v)));
        break;
      case 2: {
        uint64_t bits;
        const double d = std::get<double>(v);
        std::memcpy(&bits, &d, sizeof(bits));
        PutFixed64(raw, bits);
        break;
      }
      case 3:
        PutVarint(raw, std::get<std::string>(v).size());
        raw += std::get<std::string>(v);
        break;
      case 4:
        raw.push_back(std::get<bool>(v) ? 1 : 0);
        break;
      case 5:
        PutVarint(raw, std::get<Bytes>(v).data.size());
        raw += std::get<Bytes>(v).data;
        break;
      case 6:
        PutFixed64(raw, static_cast<uint64_t>(std::get<Timestamp>(v).micros));
        break;
      default:
        break;
    }
  }
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return Malformed();
  Reader in(raw);
  PageCursor cursor;
  uint64_t count;
  if (!in.Prefix(absl::string_view(kMagic, sizeof(kMagic))) ||
      !in.Fixed64(cursor.query_fingerprint) || !in.Varint(count) ||
      count > kMaxPageCursorValues) {
    return Malformed();
  }
  for (uint64_t i = 0; i < count; ++i) {
    unsigned char tag;
    if (!in.Byte(tag)) return Malformed();
    uint64_t fixed;
    switch (tag) {
      case 0:
        cursor.last_sort_values.emplace_back(std::monostate());
        break;
      case 1:
        if (!in.Fixed64(fixed)) return Malformed();
        cursor.last_sort_values.emplace_back(static_cast<int64_t>(fixed));
        break;
      case 2: {
        if (!in.Fixed64(fixed)) return Malformed();
        double d;
        std::memcpy(&d, &fixed, sizeof(d));
        cursor.last_sort_values.emplace_back(d);
        break;
      }
      case 3: {
        std::string s;
        if (!in.String(s)) return Malformed();
        cursor.last_sort_values.emplace_back(std::move(s));
        break;
      }
      case 4: {
        unsigned char b;
        if (!in.Byte(b) || b > 1) return Malformed();
        cursor.last_sort_values.emplace_back(b == 1);
        break;
      }
      case 5: {
        Bytes bytes;
        if (!in.String(bytes.data)) return Malformed();
        cursor.last_sort_values.emplace_back(std::move(bytes));
        break;
      }
      case 6:
        if (!in.Fixed64(fixed)) return Malformed();
        cursor.last_sort_values.emplace_back(
            Timestamp{static_cast<int64_t>(fixed)});
        break;
      default:
        return Malformed();
    }
  }
  if (!in.done()) return Malformed();
  return cursor;
}

}  // namespace rowgate::storage
