// WriteThrough: what one write through rowgate (Insert, Update, Delete) and
// one read that returns whole rows (Page) tell the row cache, so a client
// that wrote and then reads through rowgate sees its write.
//
// Made on the database worker BEFORE the statement is sent (it captures the
// cache's fill token then); told the outcome after the statement, before the
// reply goes out. A write's rows replace the cached ones (RowCache::
// PutWritten); a failed write, or one whose outcome is unknown (a timeout
// may have committed), or one answered from the request log, only forgets
// its keys. With a null cache, or an entity it does not cache, every method
// does nothing.
//
// One per statement, used by one thread. Never blocks beyond the cache's
// shard locks.
//
// Example:
//   WriteThrough cache(options.cache, entity);
//   absl::StatusOr<Row> row = storage::UpdateRow(conn, entity, values);
//   if (row.ok()) cache.Written({*row}); else cache.Forget(values);
#ifndef ROWGATE_LOADER_WRITE_THROUGH_H_
#define ROWGATE_LOADER_WRITE_THROUGH_H_

#include <optional>
#include <string>
#include <vector>

#include "loader/row_cache.h"
#include "storage/catalog.h"
#include "storage/statements.h"
#include "storage/value.h"

namespace rowgate::loader {

class WriteThrough {
 public:
  WriteThrough(RowCache* cache, const storage::Entity& entity);

  // Rows as stored by this write (RETURNING every column): they replace
  // the cached rows of their keys.
  void Written(const std::vector<storage::Row>& rows);
  // Rows read by a statement (Page) that started after this was made:
  // installed under the fill protocol.
  void Read(const std::vector<storage::Row>& rows);
  // Keys this write deleted: cached as missing.
  void Deleted(const std::vector<storage::Value>& keys);
  // Forgets the keys of these values (primary-key values) / rows (those
  // that carry their primary key). `unknown_keys`: some row carried no
  // primary key (a DEFAULT) and the write may have committed: every key of
  // the entity is forgotten (a cached "missing" might now exist).
  void Forget(const std::vector<storage::Value>& keys);
  void Forget(const std::vector<storage::ColumnValues>& rows,
              bool outcome_unknown);

 private:
  bool active() const { return cache_ != nullptr; }
  // The canonical key text of a primary-key value a client sent.
  std::optional<std::string> ClientKey(const storage::Value& value) const;

  RowCache* const cache_;  // null when the entity is not cached
  const storage::Entity& entity_;
  const FillToken token_;
};

}  // namespace rowgate::loader

#endif  // ROWGATE_LOADER_WRITE_THROUGH_H_
