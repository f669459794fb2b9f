// The decoder of pgoutput, PostgreSQL's built-in logical replication output
// plugin (protocol version 1): turns the messages of one replication stream
// into ChangeListener calls for the entities of a catalog. ChangeFeed
// (storage/change_feed.h) owns one per stream; it is a component of its own
// so the byte format can be tested without a server.
//
// Each transaction's keys are buffered from Begin to Commit and handed to
// the listener at Commit (at the commit's LSN), so a transaction that rolls
// back (which pgoutput never sends) or a stream cut mid-transaction delivers
// nothing. Keys are the canonical texts a lookup of the row produces
// (storage::KeyText of the stored key; see KeyFromOutput). Where a change's
// key cannot be read (a REPLICA IDENTITY USING INDEX that leaves the primary
// key out, a TOASTed key column sent as "unchanged"), the entity is reported
// with OnTruncate instead: every row may have changed, never a missed one.
// So is an entity of which one transaction changed more than a bound of
// rows (a bulk update): its keys would cost more than they save.
//
// Pure (no I/O). Not thread-safe: one stream, one thread. The entities (and
// the catalog holding them) and the listener must outlive the decoder.
//
// Example:
//   PgOutputDecoder decoder(catalog->entities() pointers, &listener);
//   for each XLogData payload: if (!decoder.Decode(payload).ok()) restart;
#ifndef ROWGATE_STORAGE_PGOUTPUT_H_
#define ROWGATE_STORAGE_PGOUTPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/catalog.h"
#include "storage/change_listener.h"

namespace rowgate::storage {

// The canonical key text (as storage::KeyText of the value a lookup reads)
// of a primary-key column's text output, as pgoutput sends it: integers as
// their decimal text, uuids as lower-case 8-4-4-4-12, text as is. A column
// type that cannot be a lookup key (IsKeyType: e.g. timestamp, numeric)
// keeps PostgreSQL's text output: no lookup can ask for it, so any text is
// consistent.
std::string KeyFromOutput(const Column& key, absl::string_view text);

class PgOutputDecoder {
 public:
  // `entities`: the entities to report changes of (pointers into one
  // catalog). Changes of other relations are skipped. A transaction that
  // changes more than `max_keys` rows of one entity reports that entity
  // with OnTruncate instead of its keys, so a bulk update of a big table
  // cannot make the decoder hold millions of keys.
  static constexpr size_t kDefaultMaxKeys = 100000;
  PgOutputDecoder(const std::vector<const Entity*>& entities,
                  ChangeListener* listener, size_t max_keys = kDefaultMaxKeys);
  PgOutputDecoder(const PgOutputDecoder&) = delete;
  PgOutputDecoder& operator=(const PgOutputDecoder&) = delete;

  // Decodes one pgoutput message (the payload of one XLogData). At a
  // Commit that touched a reported entity, calls the listener's OnTruncate
  // for every entity reported whole (truncated, a key unreadable, too many
  // keys), then OnCommit with the changed keys of the others.
  // DATA_LOSS for a malformed or unexpected message (a change outside a
  // transaction, of a relation never described, an unknown message type):
  // the stream cannot be trusted after that and must be restarted. Does
  // not block beyond the listener's callbacks.
  absl::Status Decode(absl::string_view message);

  // Reports `entity` too from the next stream on (after Reset), replacing
  // an entity of the same "schema"."table" (a table created again).
  void Follow(const Entity* entity);
  // Forgets the relations and any open transaction: a new stream starts.
  void Reset();

  // Between a Begin and its Commit.
  bool in_transaction() const { return in_transaction_; }
  // The end LSN of the last Commit decoded (0 before any).
  Lsn last_commit_end() const { return last_commit_end_; }

 private:
  class Reader;  // bounds-checked big-endian reads of one message
  struct Relation {
    const Entity* entity = nullptr;  // null: not a reported table
    int key_attribute = -1;          // the key's position in the tuples
  };
  // The keys of one entity the open transaction changed.
  struct Pending {
    ChangedKeys changes;
    absl::flat_hash_set<std::string> seen;
    bool all_rows = false;  // truncated, or a change with an unreadable key
  };

  absl::Status DecodeRelation(Reader& in);
  absl::Status DecodeChange(char type, Reader& in);
  absl::Status DecodeTruncate(Reader& in);
  absl::Status Commit(Lsn commit_lsn);
  Pending& PendingFor(const Entity* entity);
  // The entity goes to OnTruncate, not OnCommit's changes.
  static void ReportWhole(Pending& pending);

  ChangeListener* const listener_;
  const size_t max_keys_;
  // Reported entities by their quoted "schema"."table".
  absl::flat_hash_map<std::string, const Entity*> by_qualified_name_;
  absl::flat_hash_map<uint32_t, Relation> relations_;
  bool in_transaction_ = false;
  Lsn last_commit_end_ = 0;
  // Per entity touched by the open transaction, in first-touch order.
  std::vector<Pending> pending_;
  absl::flat_hash_map<const Entity*, size_t> pending_index_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_PGOUTPUT_H_
