// Translation between the API's protobuf messages and storage's values,
// rows and entities; and between absl::Status and grpc::Status.
//
// Validation of names happens here: an unknown column gives INVALID_ARGUMENT
// naming the column and the entity. Pure functions; thread-safe.
#ifndef ROWGATE_SERVICE_PROTO_CONVERT_H_
#define ROWGATE_SERVICE_PROTO_CONVERT_H_

#include <grpcpp/support/status.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/repeated_field.h"
#include "rowgate/v1/rowgate.pb.h"
#include "storage/catalog.h"
#include "storage/table_ops.h"
#include "storage/value.h"

namespace rowgate::service {

// A proto Value as a storage Value. An unset Value reads as null.
// Timestamps are rounded to the microsecond, as PostgreSQL stores them;
// INVALID_ARGUMENT naming `column` for one outside protobuf Timestamp's
// valid range.
absl::StatusOr<storage::Value> ValueFromProto(const v1::Value& value,
                                              absl::string_view column);
void ValueToProto(const storage::Value& value, v1::Value* out);

// The named entity, or INVALID_ARGUMENT naming it.
absl::StatusOr<const storage::Entity*> FindEntity(
    const storage::Catalog& catalog, const std::string& name);

// Index of `column` in `entity`, or INVALID_ARGUMENT naming both.
absl::StatusOr<int> FindColumn(const storage::Entity& entity,
                               const std::string& column);

// Every column index of `entity`, in order.
std::vector<int> AllColumns(const storage::Entity& entity);

// Column indexes for a request's projection; empty means every column.
absl::StatusOr<std::vector<int>> ResolveColumns(
    const storage::Entity& entity,
    const google::protobuf::RepeatedPtrField<std::string>& names);

// The fields of `row` as column values of `entity`.
absl::StatusOr<storage::ColumnValues> RowFromProto(
    const storage::Entity& entity, const v1::Row& row);

// Writes the `columns` of `row` into `out`.
void RowToProto(const storage::Entity& entity, const storage::Row& row,
                const std::vector<int>& columns, v1::Row* out);

void DescribeEntity(const storage::Entity& entity, v1::EntityDescription* out);

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_PROTO_CONVERT_H_
