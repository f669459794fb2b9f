#include "service/write_ops.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "service/proto_convert.h"
#include "storage/composite_key.h"
#include "storage/table_ops.h"
#include "storage/upsert_ops.h"

namespace rowgate::service {
namespace {

absl::Status CheckCount(absl::string_view what, int count,
                        absl::string_view unit, const WriteLimits& limits) {
  if (static_cast<size_t>(count) <= limits.max_rows) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", count, " ", unit, "; at most ", limits.max_rows,
                   " are allowed per request (--max_keys_per_request)"));
}

absl::Status NoRequestId(const std::string& request_id) {
  if (request_id.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "request_id belongs on the TransactRequest, not on its operations");
}

v1::RowOutcome OutcomeToProto(storage::UpsertOutcome outcome) {
  switch (outcome) {
    case storage::UpsertOutcome::kInserted:
      return v1::ROW_OUTCOME_INSERTED;
    case storage::UpsertOutcome::kUpdated:
      return v1::ROW_OUTCOME_UPDATED;
    case storage::UpsertOutcome::kUnchanged:
      return v1::ROW_OUTCOME_UNCHANGED;
  }
  return v1::ROW_OUTCOME_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<std::optional<storage::ConflictSpec>> ConflictFromProto(
    const storage::Entity& entity, const v1::InsertRequest& request) {
  if (!request.has_on_conflict()) return std::nullopt;
  const v1::OnConflict& on = request.on_conflict();
  storage::ConflictAction action;
  switch (on.action()) {
    case v1::OnConflict::DO_NOTHING:
      action = storage::ConflictAction::kDoNothing;
      break;
    case v1::OnConflict::DO_UPDATE:
      action = storage::ConflictAction::kDoUpdate;
      break;
    default:
      return absl::InvalidArgumentError(
          "on_conflict needs an action: DO_NOTHING or DO_UPDATE");
  }
  std::vector<int> update_columns;
  for (const std::string& name : on.update_columns()) {
    absl::StatusOr<int> column = FindColumn(entity, name);
    if (!column.ok()) return column.status();
    update_columns.push_back(*column);
  }
  absl::StatusOr<storage::ConflictSpec> spec =
      storage::ResolveConflict(entity, action, on.constraint(), update_columns);
  if (!spec.ok()) return spec.status();
  return std::optional<storage::ConflictSpec>(std::move(*spec));
}

absl::Status RunUpsert(storage::Connection& conn, const storage::Entity& entity,
                       const std::vector<storage::ColumnValues>& rows,
                       const storage::ConflictSpec& conflict,
                       v1::InsertResponse* response,
                       std::vector<storage::Row>* written) {
  absl::StatusOr<std::vector<storage::UpsertedRow>> stored =
      storage::UpsertRows(conn, entity, rows, conflict);
  if (!stored.ok()) return stored.status();
  const std::vector<int> all = AllColumns(entity);
  for (const storage::UpsertedRow& row : *stored) {
    v1::Row* out = response->add_rows();
    if (!row.row.empty()) RowToProto(entity, row.row, all, out);
    response->add_outcomes(OutcomeToProto(row.outcome));
    // An unchanged row was only read (maybe in an older snapshot): not a
    // write for the cache.
    if (written != nullptr &&
        row.outcome != storage::UpsertOutcome::kUnchanged) {
      written->push_back(row.row);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<InsertWrite> InsertFromProto(const storage::Catalog& catalog,
                                            const v1::InsertRequest& request,
                                            const WriteLimits& limits) {
  if (absl::Status s = NoRequestId(request.request_id()); !s.ok()) return s;
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(catalog, request.entity());
  if (!entity.ok()) return entity.status();
  InsertWrite write;
  write.entity = *entity;
  if (request.rows_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Insert into ", (*entity)->name, " has no rows"));
  }
  if (absl::Status s =
          CheckCount("Insert has", request.rows_size(), "rows", limits);
      !s.ok()) {
    return s;
  }
  for (const v1::Row& row : request.rows()) {
    absl::StatusOr<storage::ColumnValues> values =
        RowFromProto(**entity, row, limits.max_value_bytes);
    if (!values.ok()) return values.status();
    write.rows.push_back(std::move(*values));
  }
  absl::StatusOr<std::optional<storage::ConflictSpec>> conflict =
      ConflictFromProto(**entity, request);
  if (!conflict.ok()) return conflict.status();
  write.conflict = std::move(*conflict);
  return write;
}

absl::StatusOr<UpdateWrite> UpdateFromProto(const storage::Catalog& catalog,
                                            const v1::UpdateRequest& request,
                                            const WriteLimits& limits) {
  if (absl::Status s = NoRequestId(request.request_id()); !s.ok()) return s;
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(catalog, request.entity());
  if (!entity.ok()) return entity.status();
  absl::StatusOr<storage::ColumnValues> values =
      RowFromProto(**entity, request.row(), limits.max_value_bytes);
  if (!values.ok()) return values.status();
  return UpdateWrite{*entity, std::move(*values)};
}

absl::StatusOr<DeleteWrite> DeleteFromProto(const storage::Catalog& catalog,
                                            const v1::DeleteRequest& request,
                                            const WriteLimits& limits) {
  if (absl::Status s = NoRequestId(request.request_id()); !s.ok()) return s;
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(catalog, request.entity());
  if (!entity.ok()) return entity.status();
  if (absl::Status s =
          CheckCount("Delete asks", request.keys_size(), "keys", limits);
      !s.ok()) {
    return s;
  }
  DeleteWrite write;
  write.entity = *entity;
  if ((*entity)->composite_key()) {
    // As Delete does: each key a list_value of the key's columns.
    for (int i = 0; i < request.keys_size(); ++i) {
      absl::StatusOr<std::string> key =
          KeyFromProto(**entity, storage::kCompositeKeyColumn, request.keys(i),
                       limits.max_value_bytes);
      if (!key.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("key ", i, " of entity ",
                                                       (*entity)->name, ": ",
                                                       key.status().message()));
      }
      write.composite_keys.push_back(std::move(*key));
    }
  }
  for (const v1::Value& key : request.keys()) {
    if ((*entity)->composite_key()) break;
    absl::StatusOr<storage::Value> value =
        ValueFromProto(key, (*entity)->key().name, limits.max_value_bytes);
    if (!value.ok()) return value.status();
    write.keys.push_back(std::move(*value));
  }
  if (request.has_expected_version()) {
    absl::StatusOr<storage::Value> value = ValueFromProto(
        request.expected_version(), "expected_version", limits.max_value_bytes);
    if (!value.ok()) return value.status();
    write.expected_version = std::move(*value);
  }
  return write;
}

absl::Status RunInsert(storage::Connection& conn, const InsertWrite& write,
                       v1::InsertResponse* response, Touched* touched) {
  if (write.conflict.has_value()) {
    return RunUpsert(conn, *write.entity, write.rows, *write.conflict, response,
                     &touched->written);
  }
  absl::StatusOr<std::vector<storage::Row>> stored =
      storage::InsertRows(conn, *write.entity, write.rows);
  if (!stored.ok()) return stored.status();
  const std::vector<int> all = AllColumns(*write.entity);
  for (const storage::Row& row : *stored) {
    RowToProto(*write.entity, row, all, response->add_rows());
  }
  touched->written = std::move(*stored);
  return absl::OkStatus();
}

absl::Status RunUpdate(storage::Connection& conn, const UpdateWrite& write,
                       v1::UpdateResponse* response, Touched* touched) {
  absl::StatusOr<storage::Row> row =
      storage::UpdateRow(conn, *write.entity, write.values);
  if (!row.ok()) return row.status();
  RowToProto(*write.entity, *row, AllColumns(*write.entity),
             response->mutable_row());
  touched->written.push_back(std::move(*row));
  return absl::OkStatus();
}

absl::Status RunDelete(storage::Connection& conn, const DeleteWrite& write,
                       const v1::DeleteRequest& request,
                       v1::DeleteResponse* response, Touched* touched) {
  absl::StatusOr<std::vector<bool>> deleted =
      write.entity->composite_key()
          ? storage::DeleteRowsForKeys(conn, *write.entity,
                                       write.composite_keys,
                                       write.expected_version)
          : storage::DeleteRows(conn, *write.entity, write.keys,
                                write.expected_version);
  if (!deleted.ok()) return deleted.status();
  for (size_t i = 0; i < deleted->size(); ++i) {
    if (!(*deleted)[i]) continue;
    *response->add_deleted_keys() = request.keys(i);
    // A composite-key entity is never cached: nothing to tell the cache.
    if (i < write.keys.size()) touched->deleted.push_back(write.keys[i]);
  }
  return absl::OkStatus();
}

}  // namespace rowgate::service
