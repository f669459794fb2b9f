// What a change feed (storage/change_feed.h) sets up before it streams: the
// checks that the database allows logical replication (each failure a
// FAILED_PRECONDITION that names the fix), the publication of the followed
// tables, and the temporary slot.
//
// Functions are thread-safe; each connection belongs to its caller's thread.
// All block, each statement bounded by `timeout`, and return CANCELLED as
// soon as `wake_fd` is readable (pg_async.h).
#ifndef ROWGATE_STORAGE_REPLICATION_SETUP_H_
#define ROWGATE_STORAGE_REPLICATION_SETUP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/catalog.h"
#include "storage/change_listener.h"
#include "storage/pg_async.h"

namespace rowgate::storage {

// A slot name for this instance: <prefix>_<host>_<pid>_<random>, [a-z0-9_]
// only (the host's other characters become '_'), at most 63 bytes. `prefix`
// must be made of those characters already.
std::string SlotName(absl::string_view prefix);

// Over a normal connection: wal_level is logical, the role has REPLICATION
// (or is a superuser), a replication slot and a WAL sender are free, and
// CheckReplicaIdentity.
absl::Status CheckLogicalReplication(PGconn* conn,
                                     const std::vector<const Entity*>& entities,
                                     int wake_fd, absl::Duration timeout);

// Over a normal connection: no table of `entities` that still exists has
// REPLICA IDENTITY NOTHING (published, it would refuse updates and deletes).
absl::Status CheckReplicaIdentity(PGconn* conn,
                                  const std::vector<const Entity*>& entities,
                                  int wake_fd, absl::Duration timeout);

// Over a normal connection: publication `name` exists, publishes inserts,
// updates, deletes and truncates (via the partition root) and holds every
// table of `entities` (CREATE PUBLICATION, or ALTER PUBLICATION for what it
// lacks; a concurrent creator is tolerated). FAILED_PRECONDITION naming the
// statement an administrator can run when the role may not.
absl::Status EnsurePublication(PGconn* conn, const std::string& name,
                               const std::vector<const Entity*>& entities,
                               int wake_fd, absl::Duration timeout,
                               bool retried = false);

// Over a replication connection: creates the temporary pgoutput slot `slot`
// and returns its consistent point, where its stream starts.
absl::StatusOr<Lsn> CreateTemporarySlot(PGconn* replication,
                                        const std::string& slot, int wake_fd,
                                        absl::Duration timeout);

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_REPLICATION_SETUP_H_
