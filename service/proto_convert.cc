#include "service/proto_convert.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/row_wire.h"
#include "storage/composite_key.h"

namespace rowgate::service {

absl::StatusOr<storage::Value> ValueFromProto(const v1::Value& value,
                                              absl::string_view column,
                                              size_t max_bytes) {
  const size_t size =
      value.kind_case() == v1::Value::kStringValue ? value.string_value().size()
      : value.kind_case() == v1::Value::kBytesValue ? value.bytes_value().size()
                                                    : 0;
  if (size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the value for column \"", storage::Abbreviate(column), "\" is ", size,
        " bytes; at most ", max_bytes, " are allowed (--max_value_bytes)"));
  }
  switch (value.kind_case()) {
    case v1::Value::kInt64Value:
      return value.int64_value();
    case v1::Value::kDoubleValue:
      return value.double_value();
    case v1::Value::kStringValue:
      return value.string_value();
    case v1::Value::kBoolValue:
      return value.bool_value();
    case v1::Value::kBytesValue:
      return storage::Bytes{value.bytes_value()};
    case v1::Value::kTimestampValue: {
      const auto& ts = value.timestamp_value();
      // google.protobuf.Timestamp's own valid range (0001-01-01 to
      // 9999-12-31, nanos in [0, 1e9)); it lies inside PostgreSQL's, and
      // checking it first keeps the arithmetic below from overflowing.
      constexpr int64_t kMinSeconds = -62135596800;
      constexpr int64_t kMaxSeconds = 253402300799;
      if (ts.seconds() < kMinSeconds || ts.seconds() > kMaxSeconds) {
        return absl::InvalidArgumentError(absl::StrCat(
            "timestamp for column \"", storage::Abbreviate(column),
            "\" is out of range: seconds ", ts.seconds(), " is not between ",
            kMinSeconds, " (0001-01-01) and ", kMaxSeconds, " (9999-12-31)"));
      }
      if (ts.nanos() < 0 || ts.nanos() > 999999999) {
        return absl::InvalidArgumentError(
            absl::StrCat("timestamp for column \"", storage::Abbreviate(column),
                         "\" is out of range: nanos ", ts.nanos(),
                         " is not between 0 and 999999999"));
      }
      // Round half up to the microsecond.
      return storage::Timestamp{ts.seconds() * 1000000 +
                                (ts.nanos() + 500) / 1000};
    }
    case v1::Value::kReference:
      // Resolved by Transact before it gets here; anywhere else it would
      // silently read as null.
      return absl::InvalidArgumentError(
          absl::StrCat("the value for column \"", storage::Abbreviate(column),
                       "\" is a reference, which only Transact resolves"));
    case v1::Value::kListValue:
      return absl::InvalidArgumentError(absl::StrCat(
          "the value for column \"", storage::Abbreviate(column),
          "\" is a list_value; a list is only a key of an entity with a "
          "composite primary key"));
    default:
      return std::monostate();
  }
}

void ValueToProto(const storage::Value& value, v1::Value* out) {
  switch (value.index()) {
    case 0:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case 1:
      out->set_int64_value(std::get<int64_t>(value));
      break;
    case 2:
      out->set_double_value(std::get<double>(value));
      break;
    case 3:
      out->set_string_value(std::get<std::string>(value));
      break;
    case 4:
      out->set_bool_value(std::get<bool>(value));
      break;
    case 5:
      out->set_bytes_value(std::get<storage::Bytes>(value).data);
      break;
    case 6: {
      const TimestampParts t =
          SplitMicros(std::get<storage::Timestamp>(value).micros);
      auto* ts = out->mutable_timestamp_value();
      ts->set_seconds(t.seconds);
      ts->set_nanos(t.nanos);
      break;
    }
  }
}

absl::StatusOr<const storage::Entity*> FindEntity(
    const storage::Catalog& catalog, const std::string& name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("entity is required");
  }
  // No longer name can match: refused before any lookup.
  if (name.size() > kMaxIdentifierBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "entity name \"", storage::Abbreviate(name), "\" is ", name.size(),
        " bytes; PostgreSQL identifiers are at most ", kMaxIdentifierBytes));
  }
  const storage::Entity* entity = catalog.Find(name);
  if (entity == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown entity \"", storage::Abbreviate(name),
                     "\" (ListEntities shows the tables rowgate serves)"));
  }
  return entity;
}

absl::StatusOr<int> FindColumn(const storage::Entity& entity,
                               const std::string& column) {
  if (column.size() > kMaxIdentifierBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column name \"", storage::Abbreviate(column), "\" is ", column.size(),
        " bytes; PostgreSQL identifiers are at most ", kMaxIdentifierBytes));
  }
  if (column.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a column name of entity ", entity.name, " is empty"));
  }
  const int index = entity.ColumnIndex(column);
  if (index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown column \"", storage::Abbreviate(column),
                     "\" of entity ", entity.name));
  }
  return index;
}

std::vector<int> AllColumns(const storage::Entity& entity) {
  std::vector<int> columns(entity.columns.size());
  for (size_t i = 0; i < columns.size(); ++i) columns[i] = static_cast<int>(i);
  return columns;
}

absl::StatusOr<std::vector<int>> ResolveColumns(
    const storage::Entity& entity,
    const google::protobuf::RepeatedPtrField<std::string>& names) {
  if (names.empty()) return AllColumns(entity);
  std::vector<int> columns;
  columns.reserve(names.size());
  for (const std::string& name : names) {
    absl::StatusOr<int> index = FindColumn(entity, name);
    if (!index.ok()) return index.status();
    columns.push_back(*index);
  }
  return columns;
}

absl::StatusOr<std::string> KeyFromProto(const storage::Entity& entity,
                                         int key_column, const v1::Value& key,
                                         size_t max_value_bytes) {
  if (key_column != storage::kCompositeKeyColumn) {
    const storage::Column& c = entity.columns[key_column];
    absl::StatusOr<storage::Value> value =
        ValueFromProto(key, c.name, max_value_bytes);
    if (!value.ok()) return value.status();
    return storage::CanonicalKey(c.name, c.type, *value);
  }
  if (key.kind_case() != v1::Value::kListValue) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the primary key of ", entity.name, " is ",
        storage::KeyColumnsText(entity), ": a key is a list_value of ",
        entity.key_columns.size(), " values in that order"));
  }
  std::vector<storage::Value> parts;
  for (int i = 0; i < key.list_value().values_size(); ++i) {
    const std::string& column = i < static_cast<int>(entity.key_columns.size())
                                    ? entity.columns[entity.key_columns[i]].name
                                    : entity.name;
    absl::StatusOr<storage::Value> value =
        ValueFromProto(key.list_value().values(i), column, max_value_bytes);
    if (!value.ok()) return value.status();
    parts.push_back(std::move(*value));
  }
  return storage::CanonicalCompositeKey(entity, parts);
}

absl::StatusOr<storage::ColumnValues> RowFromProto(
    const storage::Entity& entity, const v1::Row& row, size_t max_value_bytes) {
  if (row.related_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a row for ", entity.name,
                     " carries related rows; `related` is only in answers"));
  }
  storage::ColumnValues values;
  values.reserve(row.fields_size());
  for (const auto& [name, value] : row.fields()) {
    absl::StatusOr<int> index = FindColumn(entity, name);
    if (!index.ok()) return index.status();
    absl::StatusOr<storage::Value> v =
        ValueFromProto(value, name, max_value_bytes);
    if (!v.ok()) return v.status();
    values.emplace_back(*index, std::move(*v));
  }
  return values;
}

void RowToProto(const storage::Entity& entity, const storage::Row& row,
                const std::vector<int>& columns, v1::Row* out) {
  auto* fields = out->mutable_fields();
  for (int c : columns) {
    ValueToProto(row[c], &(*fields)[entity.columns[c].name]);
  }
}

std::string EncodeRowWithAllColumns(const storage::Entity& entity,
                                    const storage::Row& row) {
  std::string encoded;
  AppendRowWire(entity, row, AllColumns(entity), &encoded);
  return encoded;
}

void RowToValueList(const storage::Row& row, const std::vector<int>& columns,
                    v1::ValueRow* out) {
  auto* values = out->mutable_values();
  values->Reserve(columns.size());
  for (int c : columns) ValueToProto(row[c], values->Add());
}

void DescribeEntity(const storage::Entity& entity, v1::EntityDescription* out) {
  out->set_name(entity.name);
  if (!entity.composite_key()) out->set_primary_key(entity.key().name);
  for (int c : entity.key_columns) {
    out->add_primary_key_columns(entity.columns[c].name);
  }
  if (entity.version_column >= 0) {
    out->set_version_column(entity.columns[entity.version_column].name);
  }
  for (const storage::Column& c : entity.columns) {
    v1::ColumnDescription* column = out->add_columns();
    column->set_name(c.name);
    column->set_type(c.type_name);
    column->set_value_kind(std::string(storage::ValueKindName(c.type)));
    column->set_nullable(c.nullable);
    column->set_has_default(c.has_default);
    column->set_writable(!c.generated);
  }
  for (const storage::Relation& r : entity.relations) {
    v1::Relation* relation = out->add_relations();
    relation->set_name(r.name);
    relation->set_kind(r.kind == storage::Relation::Kind::kManyToOne
                           ? v1::Relation::MANY_TO_ONE
                       : r.kind == storage::Relation::Kind::kOneToMany
                           ? v1::Relation::ONE_TO_MANY
                           : v1::Relation::MANY_TO_MANY);
    relation->set_target_entity(r.target);
    relation->set_column(r.column);
    relation->set_target_column(r.target_column);
    relation->set_link_entity(r.link);
    relation->set_link_column(r.link_column);
    relation->set_link_target_column(r.link_target_column);
  }
  for (const storage::ForeignKeyRef& fk : entity.foreign_keys) {
    v1::ForeignKey* out_fk = out->add_foreign_keys();
    out_fk->set_column(fk.column);
    out_fk->set_references_entity(fk.references_entity);
    out_fk->set_references_column(fk.references_column);
  }
  for (const storage::UniqueKey& key : entity.unique_keys) {
    v1::UniqueConstraint* out_key = out->add_unique_constraints();
    out_key->set_name(key.name);
    for (int c : key.columns) out_key->add_columns(entity.columns[c].name);
  }
}

std::string BoundedMessage(absl::string_view message) {
  return storage::Abbreviate(message, kMaxStatusMessageBytes);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      BoundedMessage(status.message()));
}

}  // namespace rowgate::service
