// Translation between the API's protobuf messages and storage's values,
// rows and entities; and between absl::Status and grpc::Status.
//
// Validation of names happens here: an unknown column gives INVALID_ARGUMENT
// naming the column and the entity. Pure functions; thread-safe.
#ifndef ROWGATE_SERVICE_PROTO_CONVERT_H_
#define ROWGATE_SERVICE_PROTO_CONVERT_H_

#include <grpcpp/support/status.h>

#include <cstddef>
#include <limits>
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
// A string or bytes value above `max_bytes` is INVALID_ARGUMENT too.
absl::StatusOr<storage::Value> ValueFromProto(
    const v1::Value& value, absl::string_view column,
    size_t max_bytes = std::numeric_limits<size_t>::max());
void ValueToProto(const storage::Value& value, v1::Value* out);

// PostgreSQL's identifier limit (NAMEDATALEN - 1): no longer entity or
// column name can exist.
inline constexpr size_t kMaxIdentifierBytes = 63;
// Every status message rowgate sends is at most this long (plus a short
// "…(N bytes)" mark), so an echoed value cannot push a client past its
// metadata limit.
inline constexpr size_t kMaxStatusMessageBytes = 900;

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

// A request's key for a lookup by `key_column` of `entity` (or by its whole
// composite key, storage::kCompositeKeyColumn: then a list_value with one
// value per key column) as its canonical text. INVALID_ARGUMENT naming the
// key's columns for a wrong form or arity.
absl::StatusOr<std::string> KeyFromProto(
    const storage::Entity& entity, int key_column, const v1::Value& key,
    size_t max_value_bytes = std::numeric_limits<size_t>::max());

// The fields of `row` as column values of `entity`; a row carrying
// `related` is INVALID_ARGUMENT.
absl::StatusOr<storage::ColumnValues> RowFromProto(
    const storage::Entity& entity, const v1::Row& row,
    size_t max_value_bytes = std::numeric_limits<size_t>::max());

// Appends the values of `columns` of `row`, in that order (ROW_FORMAT_LIST).
void RowToValueList(const storage::Row& row, const std::vector<int>& columns,
                    v1::ValueRow* out);
// Writes the `columns` of `row` into `out`.
void RowToProto(const storage::Entity& entity, const storage::Row& row,
                const std::vector<int>& columns, v1::Row* out);
// `row` with every column, serialized as a v1::Row (row_wire.h): what the
// row cache keeps beside each cached row (loader::RowCache::Options::
// encode_row), so that a hit is answered with AddRowWire(out)->assign(...)
// without writing the row again.
std::string EncodeRowWithAllColumns(const storage::Entity& entity,
                                    const storage::Row& row);

void DescribeEntity(const storage::Entity& entity, v1::EntityDescription* out);

// `message` cut to kMaxStatusMessageBytes (on a character boundary).
std::string BoundedMessage(absl::string_view message);

// With the message bounded (BoundedMessage).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_PROTO_CONVERT_H_
