// The writes of the API as steps a worker can run: an Insert (or upsert),
// Update or Delete request checked against the catalog and translated to
// storage's terms, then run on a connection, filling the RPC's response.
// Used by Transact for each of its operations, and by Insert for its
// on_conflict choice.
//
// Translation is pure and thread-safe; Run* block on the connection and are
// for database workers only. A translated write holds a pointer to its
// Entity: the catalog it came from must outlive it (storage::LiveCatalog
// keeps every catalog it served).
#ifndef ROWGATE_SERVICE_WRITE_OPS_H_
#define ROWGATE_SERVICE_WRITE_OPS_H_

#include <cstddef>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rowgate/v1/rowgate.pb.h"
#include "storage/catalog.h"
#include "storage/connection.h"
#include "storage/statements.h"
#include "storage/upsert_statement.h"
#include "storage/value.h"

namespace rowgate::service {

// Bounds a translation checks, from DataServiceOptions.
struct WriteLimits {
  size_t max_rows = 1000;  // rows of an Insert, keys of a Delete
  size_t max_value_bytes = 1 << 20;
};

// An Insert's on_conflict as a storage::ConflictSpec (nullopt when unset or
// ACTION_UNSPECIFIED with nothing else set). INVALID_ARGUMENT naming the
// unknown constraint or column.
absl::StatusOr<std::optional<storage::ConflictSpec>> ConflictFromProto(
    const storage::Entity& entity, const v1::InsertRequest& request);

// Runs an upsert and fills `response` (rows and outcomes); the rows it
// inserted or updated are appended to `*written` (for the row cache) when
// given. Blocks.
absl::Status RunUpsert(storage::Connection& conn, const storage::Entity& entity,
                       const std::vector<storage::ColumnValues>& rows,
                       const storage::ConflictSpec& conflict,
                       v1::InsertResponse* response,
                       std::vector<storage::Row>* written = nullptr);

struct InsertWrite {
  const storage::Entity* entity = nullptr;
  std::vector<storage::ColumnValues> rows;
  std::optional<storage::ConflictSpec> conflict;
};
struct UpdateWrite {
  const storage::Entity* entity = nullptr;
  storage::ColumnValues values;
};
struct DeleteWrite {
  const storage::Entity* entity = nullptr;
  std::vector<storage::Value> keys;
  // For an entity with a composite key, the canonical key texts instead.
  std::vector<std::string> composite_keys;
  std::optional<storage::Value> expected_version;
};

// The checks and translation the single RPCs make (INVALID_ARGUMENT naming
// what is wrong). A request_id is refused: it belongs on the transaction.
absl::StatusOr<InsertWrite> InsertFromProto(const storage::Catalog& catalog,
                                            const v1::InsertRequest& request,
                                            const WriteLimits& limits);
absl::StatusOr<UpdateWrite> UpdateFromProto(const storage::Catalog& catalog,
                                            const v1::UpdateRequest& request,
                                            const WriteLimits& limits);
absl::StatusOr<DeleteWrite> DeleteFromProto(const storage::Catalog& catalog,
                                            const v1::DeleteRequest& request,
                                            const WriteLimits& limits);

// What a write changed, for the row cache: rows as stored, keys deleted.
struct Touched {
  std::vector<storage::Row> written;
  std::vector<storage::Value> deleted;
};

// Run one write, filling the response as the single RPC would and
// `*touched` with what it changed. Block.
absl::Status RunInsert(storage::Connection& conn, const InsertWrite& write,
                       v1::InsertResponse* response, Touched* touched);
absl::Status RunUpdate(storage::Connection& conn, const UpdateWrite& write,
                       v1::UpdateResponse* response, Touched* touched);
absl::Status RunDelete(storage::Connection& conn, const DeleteWrite& write,
                       const v1::DeleteRequest& request,
                       v1::DeleteResponse* response, Touched* touched);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_WRITE_OPS_H_
