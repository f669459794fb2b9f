#include "storage/pgoutput.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/value.h"

namespace rowgate::storage {

namespace {

// One column of a TupleData, as far as the decoder needs it.
struct KeyValue {
  enum Kind { kMissing, kNull, kUnchanged, kText } kind = kMissing;
  absl::string_view text;
};

}  // namespace

// pgoutput's wire format (PostgreSQL's "Logical Replication Message
// Formats"): integers big-endian, strings NUL-terminated. A read past the end
// leaves the reader failed and returns zeros, so every message is decoded
// to its end and then checked once.
class PgOutputDecoder::Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}

  uint64_t Int(int bytes) {
    if (!Need(bytes)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v = (v << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    }
    pos_ += bytes;
    return v;
  }
  char Byte() { return static_cast<char>(Int(1)); }
  absl::string_view String() {
    const size_t end = data_.find('\0', pos_);
    if (failed_ || end == absl::string_view::npos) {
      failed_ = true;
      return {};
    }
    absl::string_view s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  absl::string_view Bytes(uint64_t n) {
    if (!Need(n)) return {};
    absl::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool failed() const { return failed_; }
  bool at_end() const { return pos_ == data_.size(); }

  // Reads a TupleData and returns its column `key_attribute` (kMissing
  // when it has none: -1, or fewer columns).
  KeyValue TupleKey(int key_attribute) {
    KeyValue key;
    const int columns = static_cast<int>(Int(2));
    for (int c = 0; c < columns && !failed_; ++c) {
      KeyValue v;
      switch (Byte()) {
        case 'n':
          v.kind = KeyValue::kNull;
          break;
        case 'u':
          v.kind = KeyValue::kUnchanged;
          break;
        case 't':  // text; 'b' (binary) only in protocol version 2 and up
        case 'b':
          v.kind = KeyValue::kText;
          v.text = Bytes(Int(4));
          break;
        default:  // cannot be skipped: its length is unknown
          failed_ = true;
          break;
      }
      if (c == key_attribute) key = v;
    }
    return key;
  }

 private:
  bool Need(uint64_t n) {
    if (failed_ || n > data_.size() - pos_) failed_ = true;
    return !failed_;
  }
  absl::string_view data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

namespace {

absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("malformed pgoutput message: ", what));
}

}  // namespace

std::string KeyFromOutput(const Column& key, absl::string_view text) {
  absl::StatusOr<std::string> canonical =
      CanonicalKey(key.name, key.type, ParseText(key.type, text));
  return canonical.ok() ? *std::move(canonical) : std::string(text);
}

PgOutputDecoder::PgOutputDecoder(const std::vector<const Entity*>& entities,
                                 ChangeListener* listener, size_t max_keys)
    : listener_(listener), max_keys_(max_keys) {
  for (const Entity* e : entities) by_qualified_name_[e->qualified_name] = e;
}

void PgOutputDecoder::Follow(const Entity* entity) {
  by_qualified_name_[entity->qualified_name] = entity;
}

void PgOutputDecoder::Reset() {
  relations_.clear();
  in_transaction_ = false;
  pending_.clear();
  pending_index_.clear();
}

PgOutputDecoder::Pending& PgOutputDecoder::PendingFor(const Entity* entity) {
  auto [it, added] = pending_index_.try_emplace(entity, pending_.size());
  if (added) {
    pending_.emplace_back();
    pending_.back().changes.entity = entity;
  }
  return pending_[it->second];
}

void PgOutputDecoder::ReportWhole(Pending& pending) {
  pending.all_rows = true;
  // Its keys would say nothing more: let them go.
  std::vector<std::string>().swap(pending.changes.keys);
  absl::flat_hash_set<std::string>().swap(pending.seen);
}

absl::Status PgOutputDecoder::Decode(absl::string_view message) {
  Reader in(message);
  const char type = in.Byte();
  absl::Status status;
  switch (type) {
    case 'B':  // Begin: final LSN, commit time, xid
      in.Int(8);
      in.Int(8);
      in.Int(4);
      if (in_transaction_) return Malformed("Begin inside a transaction");
      in_transaction_ = true;
      pending_.clear();
      pending_index_.clear();
      break;
    case 'C': {  // Commit: flags, commit LSN, end LSN, commit time
      in.Int(1);
      const Lsn commit_lsn = in.Int(8);
      const Lsn end_lsn = in.Int(8);
      in.Int(8);
      if (in.failed()) return Malformed("short Commit");
      if (!in_transaction_) return Malformed("Commit outside a transaction");
      status = Commit(commit_lsn);
      last_commit_end_ = end_lsn;
      break;
    }
    case 'R':
      status = DecodeRelation(in);
      break;
    case 'I':
    case 'U':
    case 'D':
      status = DecodeChange(type, in);
      break;
    case 'T':
      status = DecodeTruncate(in);
      break;
    case 'O':  // Origin: LSN, name
      in.Int(8);
      in.String();
      break;
    case 'Y':  // Type: OID, namespace, name (only for non-builtin types)
      in.Int(4);
      in.String();
      in.String();
      break;
    case 'M':  // a logical decoding message (messages option): nothing to do
      return absl::OkStatus();
    default:
      return Malformed(
          absl::StrCat("unknown message type ", static_cast<int>(type)));
  }
  if (!status.ok()) return status;
  if (in.failed())
    return Malformed(
        absl::StrCat("short message '", absl::string_view(&type, 1), "'"));
  return absl::OkStatus();
}

absl::Status PgOutputDecoder::DecodeRelation(Reader& in) {
  const uint32_t oid = static_cast<uint32_t>(in.Int(4));
  const absl::string_view nspname = in.String();
  const absl::string_view relname = in.String();
  in.Byte();  // replica identity setting
  const int columns = static_cast<int>(in.Int(2));
  Relation relation;
  // pgoutput sends "" for pg_catalog, which holds no user tables.
  auto it = by_qualified_name_.find(
      absl::StrCat(QuoteIdentifier(nspname), ".", QuoteIdentifier(relname)));
  if (it != by_qualified_name_.end()) relation.entity = it->second;
  for (int c = 0; c < columns && !in.failed(); ++c) {
    in.Byte();  // flags (1: part of the replica identity)
    const absl::string_view name = in.String();
    in.Int(4);  // type OID
    in.Int(4);  // type modifier
    // A composite key is not one attribute: its changes report every row
    // of the entity (key_attribute stays -1, so no key is read).
    if (relation.entity != nullptr && !relation.entity->composite_key() &&
        name == relation.entity->key().name) {
      relation.key_attribute = c;
    }
  }
  if (in.failed()) return Malformed("short Relation");
  relations_[oid] = relation;
  return absl::OkStatus();
}

absl::Status PgOutputDecoder::DecodeChange(char type, Reader& in) {
  const uint32_t oid = static_cast<uint32_t>(in.Int(4));
  if (!in_transaction_) return Malformed("a change outside a transaction");
  auto it = relations_.find(oid);
  if (it == relations_.end()) {
    return Malformed(absl::StrCat("a change of relation ", oid,
                                  " before its Relation message"));
  }
  const Relation& relation = it->second;
  auto read_tuple = [&] { return in.TupleKey(relation.key_attribute); };
  std::vector<KeyValue> keys;
  char marker = in.Byte();
  if (type == 'U' && (marker == 'K' || marker == 'O')) {
    keys.push_back(read_tuple());  // the old key or row
    marker = in.Byte();
  }
  if (type == 'D') {
    if (marker != 'K' && marker != 'O') {
      return Malformed("Delete without a key or old tuple");
    }
  } else if (marker != 'N') {
    return Malformed("Insert or Update without a new tuple");
  }
  keys.push_back(read_tuple());
  if (in.failed() || !in.at_end()) return Malformed("bad TupleData");
  if (relation.entity == nullptr) return absl::OkStatus();

  Pending& pending = PendingFor(relation.entity);
  // An update sends the old key only when the key changed (REPLICA IDENTITY
  // DEFAULT) or always (FULL); both keys are changed rows then. The key of
  // an update's new tuple is always needed: it is the row's key from now.
  for (const KeyValue& key : keys) {
    if (key.kind != KeyValue::kText) {
      // A key left out (an identity index without it), null, or sent as
      // unchanged (TOASTed): which row changed is unknown.
      ReportWhole(pending);
      continue;
    }
    if (pending.all_rows) continue;  // the entity is reported whole
    std::string text = KeyFromOutput(relation.entity->key(), key.text);
    if (pending.seen.insert(text).second) {
      pending.changes.keys.push_back(std::move(text));
    }
    if (pending.changes.keys.size() > max_keys_) ReportWhole(pending);
  }
  return absl::OkStatus();
}

absl::Status PgOutputDecoder::DecodeTruncate(Reader& in) {
  const uint64_t count = in.Int(4);
  in.Int(1);  // options: CASCADE, RESTART IDENTITY
  if (!in_transaction_) return Malformed("Truncate outside a transaction");
  for (uint64_t i = 0; i < count && !in.failed(); ++i) {
    const uint32_t oid = static_cast<uint32_t>(in.Int(4));
    if (in.failed()) break;
    auto it = relations_.find(oid);
    if (it == relations_.end()) {
      return Malformed(absl::StrCat("a truncate of relation ", oid,
                                    " before its Relation message"));
    }
    if (it->second.entity != nullptr) {
      ReportWhole(PendingFor(it->second.entity));
    }
  }
  return absl::OkStatus();
}

absl::Status PgOutputDecoder::Commit(Lsn commit_lsn) {
  in_transaction_ = false;
  if (pending_.empty()) return absl::OkStatus();
  std::vector<ChangedKeys> changes;
  changes.reserve(pending_.size());
  for (Pending& p : pending_) {
    if (p.all_rows) listener_->OnTruncate(commit_lsn, *p.changes.entity);
    if (!p.changes.keys.empty()) changes.push_back(std::move(p.changes));
  }
  pending_.clear();
  pending_index_.clear();
  listener_->OnCommit(commit_lsn, changes);
  return absl::OkStatus();
}

}  // namespace rowgate::storage
