// Rows written straight into protobuf's wire format, without building
// rowgate.v1 messages first.
//
// An answer of 100 rows built as messages costs a protobuf map per row: a
// hash and a node per column, a pass to size it and one to serialize it,
// then the arena's destructors. That was a quarter of rowgate's CPU at 16
// calls of 100 keys. These functions write the same bytes protobuf would
// write for the same message (map entries in the order of `columns`, which
// protobuf leaves unspecified), so every client parses the same row.
//
// A row written here is added to a KeyResult as an unknown field of the
// right number (AddRowWire): serialized with the KeyResult it is a row like
// any other, but `rows()` on the server's side does not show it. Use it only
// for answers about to be serialized.
//
// Pure functions; thread-safe.
#ifndef ROWGATE_SERVICE_ROW_WIRE_H_
#define ROWGATE_SERVICE_ROW_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "rowgate/v1/rowgate.pb.h"
#include "storage/catalog.h"
#include "storage/value.h"

namespace rowgate::service {

// A storage::Timestamp as google.protobuf.Timestamp's fields.
struct TimestampParts {
  int64_t seconds = 0;
  int32_t nanos = 0;  // [0, 999999999]
};
TimestampParts SplitMicros(int64_t micros);

// Appends `value` as a serialized rowgate.v1.Value (what ValueToProto
// builds).
void AppendValueWire(const storage::Value& value, std::string* out);

// Appends the `columns` of `row` as a serialized rowgate.v1.Row (what
// RowToProto builds), its map entries in the order of `columns`.
void AppendRowWire(const storage::Entity& entity, const storage::Row& row,
                   const std::vector<int>& columns, std::string* out);

// Appends the `columns` of `row` as a serialized rowgate.v1.ValueRow (what
// RowToValueList builds).
void AppendValueRowWire(const storage::Row& row,
                        const std::vector<int>& columns, std::string* out);

// A new, empty element of `out`'s rows (AddRowWire) or value_rows
// (AddValueRowWire), as its serialized bytes: write a row into it with
// AppendRowWire or AppendValueRowWire.
std::string* AddRowWire(v1::KeyResult* out);
std::string* AddValueRowWire(v1::KeyResult* out);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_ROW_WIRE_H_
