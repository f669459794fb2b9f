// Following relations (storage/relations.h) from rows already loaded: one
// walk per call with includes, every hop a Loader lookup, so the hops of
// concurrent callers merge into one query per (entity, key column) like any
// other lookups. A many-to-one or one-to-many hop is one lookup of the
// target by the relating column; a many-to-many hop looks the link entity
// up by its column, then the targets by theirs. Each level starts as soon
// as its parent's rows are in; nested levels of different relations run
// side by side.
//
// Knows nothing of gRPC. A walk is started from the first level's rows
// (often inside a loader callback, on a database worker: Start never
// blocks) and calls `done` exactly once: with every level's rows, with the
// first failed lookup's status, or with the status given to Cancel.
// Thread-safe; the walk keeps itself, its plans and the rows it found alive
// until `done` has run; the Loader must outlive it.
//
// Example:
//   auto walk = IncludeWalk::Start(loader, plans, users, rows, deadline,
//       [](absl::StatusOr<IncludeResult> included) { ... });
//   walk->Cancel(absl::CancelledError("client went away"));
#ifndef ROWGATE_LOADER_INCLUDE_WALK_H_
#define ROWGATE_LOADER_INCLUDE_WALK_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loader/batch_loader.h"
#include "storage/catalog.h"
#include "storage/mutex.h"

namespace rowgate::loader {

// One include, resolved against the catalog.
struct IncludePlan {
  std::string name;  // the relation's name
  std::string path;  // from the request's entity, e.g. "groups.grouptype"
  const storage::Entity* target = nullptr;
  int source_column = -1;      // of the parent's rows: the values to follow
  int target_key_column = -1;  // of the target, matched against them
  // Many-to-many: the link entity, its column matched against the parent's
  // values, and its column holding the target's values.
  const storage::Entity* link = nullptr;
  int link_key_column = -1;
  int link_target_column = -1;
  std::vector<int> columns;  // the target's columns to answer (projection)
  std::vector<IncludePlan> children;
};

// What one plan found: per parent key text (ParentKey), the related rows in
// the target's primary key order.
struct IncludedRows {
  absl::flat_hash_map<std::string, std::vector<const storage::Row*>> by_key;
  std::vector<IncludedRows> children;  // aligned with IncludePlan::children
};

struct IncludeResult {
  std::vector<IncludedRows> includes;  // aligned with the plans walked
  // Keep the rows pointed to alive (from queries, and from the row cache).
  std::vector<std::shared_ptr<const storage::KeyedRows>> batches;
  std::vector<CachedEntry> cached;
};

// The key text under which `plan` filed the rows related to `parent` (a row
// of the entity the plan starts from); nullopt when its value relates
// nothing (null).
std::optional<std::string> ParentKey(const IncludePlan& plan,
                                     const storage::Entity& parent_entity,
                                     const storage::Row& parent);

class IncludeWalk : public std::enable_shared_from_this<IncludeWalk> {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<IncludeResult>) &&>;

  // Walks `plans` from `rows` (of `entity`; they must stay alive until
  // `done`). Never blocks; `done` may run inline when nothing is to load.
  static std::shared_ptr<IncludeWalk> Start(
      Loader& loader, std::shared_ptr<const std::vector<IncludePlan>> plans,
      const storage::Entity& entity, std::vector<const storage::Row*> rows,
      absl::Time deadline, Done done);

  // Answers `done` with `status` unless answered already, and cancels the
  // lookups in flight. Never blocks.
  void Cancel(absl::Status status);

  IncludeWalk(Loader& loader,
              std::shared_ptr<const std::vector<IncludePlan>> plans,
              absl::Time deadline, Done done);

 private:
  using OnRows = absl::AnyInvocable<void(const LoadResult&) &&>;

  void Walk(const IncludePlan& plan, IncludedRows& node,
            const storage::Entity& parent,
            const std::vector<const storage::Row*>& rows);
  void Issue(LoadRequest request, OnRows on_rows);
  void Release();
  void Finish(absl::Status status);

  Loader& loader_;
  const std::shared_ptr<const std::vector<IncludePlan>> plans_;
  const absl::Time deadline_;

  storage::Mutex mu_;
  Done done_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<LoadTicket>> tickets_ ABSL_GUARDED_BY(mu_);
  // Each node is written only by its own hops' callbacks, one after the
  // other; the tree's shape is fixed before the first lookup. Batches are
  // appended under mu_.
  IncludeResult result_;
};

}  // namespace rowgate::loader

#endif  // ROWGATE_LOADER_INCLUDE_WALK_H_
