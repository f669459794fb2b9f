#include "tests/e2e/e2e_helpers.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <pqxx/pqxx>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "storage/catalog.h"
#include "storage/composite_key.h"
#include "storage/connection.h"
#include "storage/table_ops.h"
#include "tests/common/test_database.h"

namespace rowgate::e2e {

v1::Value Int(int64_t value) {
  v1::Value v;
  v.set_int64_value(value);
  return v;
}

v1::Value Str(std::string value) {
  v1::Value v;
  v.set_string_value(std::move(value));
  return v;
}

v1::Value Null() {
  v1::Value v;
  v.set_null_value(google::protobuf::NULL_VALUE);
  return v;
}

v1::Value Ts(const google::protobuf::Timestamp& value) {
  v1::Value v;
  *v.mutable_timestamp_value() = value;
  return v;
}

std::vector<v1::Value> Ints(std::initializer_list<int64_t> values) {
  std::vector<v1::Value> out;
  for (int64_t value : values) out.push_back(Int(value));
  return out;
}

v1::Value CompositeKey(std::vector<v1::Value> parts) {
  v1::Value v;
  for (v1::Value& part : parts) {
    *v.mutable_list_value()->add_values() = std::move(part);
  }
  return v;
}

v1::Value CompositeKey(std::initializer_list<int64_t> parts) {
  return CompositeKey(Ints(parts));
}

int64_t Micros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

v1::Value Field(const v1::Row& row, const std::string& column) {
  auto it = row.fields().find(column);
  if (it == row.fields().end()) {
    ADD_FAILURE() << "row has no column \"" << column
                  << "\": " << row.ShortDebugString();
    return v1::Value();
  }
  return it->second;
}

int64_t IdOf(const v1::Row& row) {
  v1::Value id = Field(row, "id");
  if (id.kind_case() != v1::Value::kInt64Value) {
    ADD_FAILURE() << "id is not an int64_value: " << row.ShortDebugString();
    return 0;
  }
  return id.int64_value();
}

std::vector<int64_t> IdsOf(
    const google::protobuf::RepeatedPtrField<v1::Row>& rows) {
  std::vector<int64_t> ids;
  for (const v1::Row& row : rows) ids.push_back(IdOf(row));
  return ids;
}

std::vector<std::string> FieldNames(const v1::Row& row) {
  std::vector<std::string> names;
  for (const auto& [name, value] : row.fields()) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

v1::Row MakeRow(
    std::initializer_list<std::pair<std::string, v1::Value>> cells) {
  v1::Row row;
  for (const auto& [column, value] : cells) {
    (*row.mutable_fields())[column] = value;
  }
  return row;
}

v1::BatchGetRequest BatchGetRequest(const std::string& entity,
                                    std::vector<v1::Value> keys,
                                    const std::string& key_column,
                                    std::vector<std::string> columns) {
  v1::BatchGetRequest request;
  request.set_entity(entity);
  for (v1::Value& key : keys) *request.add_keys() = std::move(key);
  request.set_key_column(key_column);
  for (std::string& column : columns) request.add_columns(std::move(column));
  return request;
}

v1::Filter MakeFilter(const std::string& column, v1::Filter::Operator op,
                      v1::Value value) {
  v1::Filter filter;
  filter.set_column(column);
  filter.set_op(op);
  if (value.kind_case() != v1::Value::KIND_NOT_SET) {
    *filter.mutable_value() = std::move(value);
  }
  return filter;
}

v1::Filter InFilter(const std::string& column, std::vector<v1::Value> values) {
  v1::Filter filter;
  filter.set_column(column);
  filter.set_op(v1::Filter::IN);
  for (v1::Value& value : values) *filter.add_values() = std::move(value);
  return filter;
}

std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

Client::Client(std::shared_ptr<grpc::Channel> channel)
    : data_(v1::DataService::NewStub(channel)),
      admin_(v1::AdminService::NewStub(channel)) {}

grpc::Status Client::BatchGet(const v1::BatchGetRequest& request,
                              v1::BatchGetResponse* response) {
  return data_->BatchGet(NewContext().get(), request, response);
}

grpc::Status Client::Insert(const v1::InsertRequest& request,
                            v1::InsertResponse* response) {
  return data_->Insert(NewContext().get(), request, response);
}

grpc::Status Client::Update(const v1::UpdateRequest& request,
                            v1::UpdateResponse* response) {
  return data_->Update(NewContext().get(), request, response);
}

grpc::Status Client::Delete(const v1::DeleteRequest& request,
                            v1::DeleteResponse* response) {
  return data_->Delete(NewContext().get(), request, response);
}

grpc::Status Client::Page(const v1::PageRequest& request,
                          v1::PageResponse* response) {
  return data_->Page(NewContext().get(), request, response);
}

std::vector<v1::Row> Client::MustInsert(const std::string& entity,
                                        std::vector<v1::Row> rows) {
  v1::InsertRequest request;
  request.set_entity(entity);
  for (v1::Row& row : rows) *request.add_rows() = std::move(row);
  v1::InsertResponse response;
  grpc::Status status = Insert(request, &response);
  EXPECT_THAT(status, IsOk()) << "inserting into " << entity;
  EXPECT_EQ(response.rows_size(), request.rows_size());
  return {response.rows().begin(), response.rows().end()};
}

v1::Row Client::MustGet(const std::string& entity, int64_t id) {
  v1::BatchGetResponse response;
  grpc::Status status = BatchGet(BatchGetRequest(entity, {Int(id)}), &response);
  EXPECT_THAT(status, IsOk()) << "reading " << entity << " " << id;
  if (!status.ok() || response.results_size() != 1 ||
      response.results(0).rows_size() != 1) {
    ADD_FAILURE() << "no row " << id << " in " << entity << ": "
                  << response.ShortDebugString();
    return v1::Row();
  }
  return response.results(0).rows(0);
}

v1::LoaderStats Client::MustGetLoaderStats() {
  v1::LoaderStats stats;
  grpc::Status status = admin_->GetLoaderStats(
      NewContext().get(), v1::GetLoaderStatsRequest(), &stats);
  EXPECT_THAT(status, IsOk()) << "GetLoaderStats";
  return stats;
}

std::string UniqueTag(absl::string_view prefix) {
  static std::atomic<int> counter{0};
  static const int64_t start = absl::ToUnixMicros(absl::Now());
  return absl::StrFormat("%s%x%x%d", prefix, start, getpid(), counter++);
}

std::string SqlQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "''"}}), "'");
}

int64_t NextSequenceValue() {
  auto rows = rowgate::testing::ExecSql("SELECT nextval('all_id_seq')");
  return std::stoll(rows.at(0).at(0));
}

std::vector<int64_t> InsertUsersBySql(const std::string& surname, int count,
                                      const std::string& name_prefix) {
  auto rows = rowgate::testing::ExecSql(absl::StrFormat(
      "INSERT INTO users (name, surname, email, \"externalId\") "
      "SELECT %s || lpad(g::text, 4, '0'), %s, g || '@' || %s || '.test', g "
      "FROM generate_series(1, %d) g ORDER BY g RETURNING id",
      SqlQuote(name_prefix), SqlQuote(surname), SqlQuote(surname), count));
  std::vector<int64_t> ids;
  for (const auto& row : rows) ids.push_back(std::stoll(row.at(0)));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string LookupStatement(const std::string& entity,
                            const std::string& key_column) {
  storage::Connection conn(rowgate::testing::TestDatabaseUrl());
  absl::StatusOr<std::shared_ptr<const storage::Catalog>> catalog =
      storage::Catalog::Load(conn, "public", "lastchange");
  if (!catalog.ok()) {
    ADD_FAILURE() << "reading the catalog: " << catalog.status();
    return "";
  }
  const storage::Entity* e = (*catalog)->Find(entity);
  if (e == nullptr) {
    ADD_FAILURE() << "no entity " << entity;
    return "";
  }
  const int column = !key_column.empty()  ? e->ColumnIndex(key_column)
                     : e->composite_key() ? storage::kCompositeKeyColumn
                                          : e->primary_key;
  if (column < 0 && column != storage::kCompositeKeyColumn) {
    ADD_FAILURE() << "no column " << key_column << " in " << entity;
    return "";
  }
  return storage::LookupSql(*e, column);
}

long long StatementCallsExactly(const std::string& statement) {
  pqxx::connection conn(rowgate::testing::TestDatabaseUrl());
  pqxx::nontransaction txn(conn);
  return txn
      .exec_params(
          "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
          "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
          "current_database()) AND query = $1",
          statement)[0][0]
      .as<long long>();
}

}  // namespace rowgate::e2e
