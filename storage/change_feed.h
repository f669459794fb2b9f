// ChangeFeed follows PostgreSQL's logical replication for the tables of a
// catalog and tells a ChangeListener (storage/change_listener.h) which rows
// committed transactions changed, and when it can vouch for having told
// everything. It is what keeps rowgate's row cache coherent with writes made
// anywhere else (psql, migrations, other services, other rowgates).
//
// How: over a normal connection it makes sure the publication (default
// `rowgate_cache`) exists and holds the followed tables (CREATE PUBLICATION
// ... FOR TABLE, or ALTER PUBLICATION ... ADD TABLE for missing ones). Over
// a replication connection (replication=database) it creates a TEMPORARY
// logical slot with the built-in pgoutput plugin, named after the instance
// (rowgate_<host>_<pid>_<random>), and streams from it. PostgreSQL drops a
// temporary slot when its connection ends, so a stopped, crashed or killed
// rowgate never leaves WAL piling up behind it. Every reconnect makes a new
// slot: what happened in between is not replayed, which the listener
// learns from OnInterrupted.
//
// Liveness: the feed starts interrupted. Every `status_interval` it reads
// the server's WAL write position, pg_current_wal_lsn(), on the normal
// connection (a probe; an asynchronous commit counts once the WAL writer has
// written it, within wal_writer_delay); a probe is
// answered once the stream has passed that position with no transaction
// open. OnLive comes when a probe sent after (re)connecting is answered;
// OnInterrupted when the stream breaks, the walsender is silent for
// `max_silence`, or the oldest unanswered probe is older than `max_lag` (or
// the stream is more than `max_lag_bytes` behind). Under a lag the stream
// goes on and OnLive follows once it has caught up (below half the bounds).
// Each probe also checks that the publication still holds every followed
// table (one dropped from it would silently stop sending): if not, the
// stream restarts (OnInterrupted) and the publication is mended.
// A probe left unanswered for a second, because the written WAL ends inside
// a record the walsender cannot decode yet (an open transaction's, cut at a
// page boundary), is nudged with a tiny transactional
// pg_logical_emit_message, which makes the server write, flush and decode
// past it.
//
// What a listener can rely on, beyond change_listener.h: OnLive comes only
// after the stream's slot exists, so every transaction committing after a
// read that started after OnLive is delivered (PostgreSQL makes a slot once
// the transactions open at its creation have ended, and every later commit
// is in its stream). Keys are the texts of the stored keys (pgoutput.h):
// for a text key whose type matches other spellings (char(n) padding,
// citext, a nondeterministic collation) a lookup spelled differently is
// not named by them.
//
// What the database must allow (Create checks and says which fix is
// needed, FAILED_PRECONDITION):
//   - wal_level = logical (ALTER SYSTEM SET wal_level = logical, restart);
//   - a free replication slot and WAL sender (max_replication_slots,
//     max_wal_senders);
//   - a role with the REPLICATION attribute (or a superuser);
//   - for creating or extending the publication: CREATE on the database and
//     ownership of the tables (or a superuser) — or an administrator
//     creates it beforehand: CREATE PUBLICATION rowgate_cache FOR TABLE ...;
//   - no followed table with REPLICA IDENTITY NOTHING (PostgreSQL would
//     refuse updates and deletes of a published table with none).
//
// Thread-safety and lifetime: Start, Stop and Stats may be called from any
// thread, but not from a listener callback (Stop would wait for itself).
// Listener callbacks come from the feed's own thread, one at a time, never
// after Stop() has returned. The catalog (held), and the listener
// (not owned) must outlive the feed. Destruction stops it.
//
// Example:
//   ChangeFeed::Options options{.database_url = url};
//   absl::StatusOr<std::unique_ptr<ChangeFeed>> feed =
//       ChangeFeed::Create(options, catalog, &cache);
//   if (!feed.ok()) { log, run without a cache } else (*feed)->Start();
#ifndef ROWGATE_STORAGE_CHANGE_FEED_H_
#define ROWGATE_STORAGE_CHANGE_FEED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/catalog.h"
#include "storage/change_listener.h"
#include "storage/conninfo.h"

namespace rowgate::storage {

// A snapshot of a feed's state, for metrics.
struct ChangeFeedStats {
  bool connected = false;  // streaming from a slot now
  bool live = false;       // OnLive given and no OnInterrupted since
  // The last position the stream passed with no transaction open (what the
  // feed confirms to the server).
  Lsn received_lsn = 0;
  // The commit LSN of the last OnCommit/OnTruncate delivered.
  Lsn applied_lsn = 0;
  // The server's WAL position at the last probe.
  Lsn server_lsn = 0;
  // How far the stream is behind: server_lsn - received_lsn (0 when
  // caught up), and the age of the oldest unanswered probe.
  uint64_t lag_bytes = 0;
  absl::Duration lag = absl::ZeroDuration();
  uint64_t reconnects = 0;    // streams started after the first
  uint64_t transactions = 0;  // OnCommit calls
  std::string slot_name;      // the current (or last) slot
  absl::Status last_error;    // why the last stream ended, or OK
};

class ChangeFeed {
 public:
  struct Options {
    // A libpq connection string or URI (the one the rest of rowgate uses).
    std::string database_url;
    // The entities of the catalog to follow, by name; empty: all of them.
    std::vector<std::string> entities;
    // The publication the feed uses (and creates or extends): lower-case
    // letters, digits and '_', at most 63 bytes.
    std::string publication = "rowgate_cache";
    // The start of slot names (same characters; the rest is host, pid and
    // a random part).
    std::string slot_prefix = "rowgate";
    // Bounds beyond which the feed reports itself interrupted (see above).
    absl::Duration max_lag = absl::Seconds(5);
    uint64_t max_lag_bytes = uint64_t{256} << 20;
    absl::Duration max_silence = absl::Seconds(10);
    // How often the feed confirms its position to the server (standby
    // status update) and probes the server's WAL position.
    absl::Duration status_interval = absl::Seconds(1);
    // Waits between reconnect attempts: doubling from min to max.
    absl::Duration reconnect_min = absl::Milliseconds(100);
    absl::Duration reconnect_max = absl::Seconds(5);
    // Connect and statement bounds for both connections.
    DatabaseTimeouts timeouts;
  };

  // Checks that the database allows the feed (see above), makes sure the
  // publication holds the followed tables, and opens the first replication
  // connection and slot, all before returning: FAILED_PRECONDITION naming
  // the fix when the database does not allow it, INVALID_ARGUMENT for bad
  // options or an unknown entity, UNAVAILABLE when PostgreSQL cannot be
  // reached or the slot cannot be made in time (PostgreSQL makes a slot
  // only once the transactions open at its creation have ended). Nothing
  // is delivered before Start(). Blocks (each step bounded by
  // options.timeouts).
  static absl::StatusOr<std::unique_ptr<ChangeFeed>> Create(
      Options options, std::shared_ptr<const Catalog> catalog,
      ChangeListener* listener);

  ~ChangeFeed();
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  // Starts streaming on the feed's own thread. Once only; does not block.
  void Start();

  // Ends the stream: if the feed was live, the listener gets a last
  // OnInterrupted (CANCELLED). Blocks until the feed's thread has ended and
  // both connections are closed (the server drops the temporary slot as
  // its walsender exits, moments later). Idempotent; also before Start().
  void Stop();

  // Follows more tables from now on: ones created after start-up, or
  // created again under a followed name (another table, which replaces the
  // old one). At its next status tick the feed checks them (replica
  // identity), adds them to the publication on its normal connection, and
  // restarts its stream on a new slot, since a stream cannot vouch for
  // changes made by transactions already running when the publication grew
  // (the listener sees OnInterrupted, then OnLive). `done` is called on the
  // feed's thread once per entity: with OK just before that OnLive, from
  // which on the entity's changes are delivered (the listener may start
  // caching it then), or with why it cannot be followed (e.g. the role may
  // not extend the publication; the stream goes on without it). Thread-safe,
  // does not block; `catalog` holds the entities.
  using FollowDone =
      std::function<void(const Entity& entity, const absl::Status& status)>;
  void Follow(std::shared_ptr<const Catalog> catalog,
              std::vector<const Entity*> entities, FollowDone done);

  // Thread-safe; does not block.
  ChangeFeedStats Stats() const;

 private:
  class Impl;  // the stream's state, owned by the feed's thread
  explicit ChangeFeed(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_CHANGE_FEED_H_
