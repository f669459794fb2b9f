// What a change feed (storage/change_feed.h) tells whoever keeps copies of
// rows, e.g. the loader's row cache: which rows committed transactions
// changed, and whether the feed can vouch for having told everything.
//
// The contract, which the cache's coherence rests on:
//   - OnCommit is called once per committed transaction that touched a
//     watched table, in commit order, after the commit, with every key the
//     transaction inserted, updated (old and new key) or deleted.
//   - Between OnInterrupted and the next OnLive the feed may have missed
//     changes: nothing learned before OnInterrupted can be trusted.
//   - OnLive(lsn) means: every transaction committed before the feed
//     (re)started streaming has been delivered, and the feed now streams
//     with a lag below its bound; it comes after OnInterrupted (the feed
//     starts interrupted) and is repeated only after another OnInterrupted.
//
// Callbacks come from the feed's own thread, one at a time, and must not
// block for long (they hold up the stream). Implementations are called
// concurrently with their other users and must be thread-safe for that.
#ifndef ROWGATE_STORAGE_CHANGE_LISTENER_H_
#define ROWGATE_STORAGE_CHANGE_LISTENER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "storage/catalog.h"

namespace rowgate::storage {

// A PostgreSQL WAL position (pg_lsn as a number).
using Lsn = uint64_t;

// The keys of one entity that one transaction changed.
struct ChangedKeys {
  const Entity* entity = nullptr;  // from the catalog the feed was given
  // Canonical primary-key texts (storage::KeyText of the stored key), as
  // the loader's lookups use them; distinct.
  std::vector<std::string> keys;
};

class ChangeListener {
 public:
  virtual ~ChangeListener() = default;

  // A transaction committed at `commit_lsn` changed these rows.
  virtual void OnCommit(Lsn commit_lsn,
                        const std::vector<ChangedKeys>& changes) = 0;
  // Every row of `entity` may have changed (TRUNCATE committed at `lsn`).
  virtual void OnTruncate(Lsn lsn, const Entity& entity) = 0;
  // From now until OnLive the feed cannot vouch for having delivered every
  // change: the stream is down, restarting, or lagging beyond its bound.
  virtual void OnInterrupted(const absl::Status& why) = 0;
  // The feed has caught up (see the contract above) at `lsn`.
  virtual void OnLive(Lsn lsn) = 0;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_CHANGE_LISTENER_H_
