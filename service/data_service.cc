#include "service/data_service.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "loader/write_through.h"
#include "service/batch_get_reactors.h"
#include "service/call_context.h"
#include "service/includes.h"
#include "service/memory_backend.h"
#include "service/proto_convert.h"
#include "service/row_wire.h"
#include "service/worker_call.h"
#include "service/write_ops.h"
#include "storage/composite_key.h"
#include "storage/mutex.h"
#include "storage/table_ops.h"

namespace rowgate::service {
namespace {

using calls::RunOnWorker;

// Runs `write(conn)`, which fills `*response`. Without a request_id, just
// that (single autocommit statements, as fast as ever); with one, through
// the request log (calls::WriteLogged): at most once per id, a retry
// answered verbatim from the log. `*replayed` says whether the answer came
// from the log. Blocks: for worker lambdas only.
template <typename Request, typename Response, typename Write>
absl::Status WriteOnce(const storage::RequestLog* log,
                       storage::Connection& conn, absl::string_view method,
                       const Request& request, Response* response, Write write,
                       bool* replayed) {
  *replayed = false;
  if (request.request_id().empty()) return write(conn);
  return calls::WriteLogged(log, conn, method, request, response,
                            std::move(write), replayed);
}

// Whether a write that failed with `status` may still have committed (a
// timeout, a connection lost at commit): its keys are forgotten as if it had.
bool OutcomeUnknown(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

// Parses the raw request into a call and, when it parses, runs `handle`
// (which ends in call->Reply()); an unparseable one was answered already.
template <typename Request, typename Response, typename Handle>
grpc::ServerUnaryReactor* ServeRaw(const grpc::ByteBuffer* raw_request,
                                   grpc::ByteBuffer* raw_response,
                                   Handle handle) {
  auto* call = new RawUnaryCall<Request, Response>(raw_request, raw_response);
  if (call->parsed()) handle(call);
  return call;
}

}  // namespace

DataServiceImpl::DataServiceImpl(
    DataServiceOptions options, std::shared_ptr<const storage::Catalog> catalog,
    loader::Loader* loader, storage::WorkerPool* pool)
    : DataServiceImpl(
          std::move(options),
          std::make_shared<storage::LiveCatalog>(std::move(catalog)), loader,
          pool) {}

DataServiceImpl::DataServiceImpl(DataServiceOptions options,
                                 std::shared_ptr<storage::LiveCatalog> catalog,
                                 loader::Loader* loader,
                                 storage::WorkerPool* pool)
    : options_(std::move(options)),
      catalog_(std::move(catalog)),
      loader_(loader),
      pool_(pool) {}

absl::Status DataServiceImpl::CheckRequestSize(absl::string_view what,
                                               int count,
                                               absl::string_view unit) const {
  if (static_cast<size_t>(count) <= options_.max_keys_per_request) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " ", count, " ", unit, "; at most ", options_.max_keys_per_request,
      " are allowed per request (--max_keys_per_request)"));
}

absl::StatusOr<PreparedLookup> DataServiceImpl::PrepareLookup(
    const v1::BatchGetRequest& request) const {
  // One catalog for the entity and its includes' relations.
  const std::shared_ptr<const storage::Catalog> catalog = CurrentCatalog();
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*catalog, request.entity());
  if (!entity.ok()) return entity.status();
  PreparedLookup lookup;
  lookup.entity = *entity;
  lookup.load.entity = *entity;
  lookup.load.key_column = (*entity)->composite_key()
                               ? storage::kCompositeKeyColumn
                               : (*entity)->primary_key;
  if (!request.key_column().empty()) {
    absl::StatusOr<int> column = FindColumn(**entity, request.key_column());
    if (!column.ok()) return column.status();
    lookup.load.key_column = *column;
  }
  absl::StatusOr<std::vector<int>> columns =
      ResolveColumns(**entity, request.columns());
  if (!columns.ok()) return columns.status();
  lookup.columns = std::move(*columns);
  if (!v1::RowFormat_IsValid(request.row_format())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "row_format ", request.row_format(),
        " is not a RowFormat (ROW_FORMAT_MAP or ROW_FORMAT_LIST)"));
  }
  absl::StatusOr<std::shared_ptr<const std::vector<loader::IncludePlan>>>
      includes = ResolveIncludes(*catalog, **entity, request.includes(),
                                 options_.max_include_depth);
  if (!includes.ok()) return includes.status();
  lookup.includes = *includes;
  lookup.load.includes = std::move(*includes);
  if (lookup.includes != nullptr &&
      request.row_format() == v1::ROW_FORMAT_LIST) {
    return absl::InvalidArgumentError(
        "includes need row_format ROW_FORMAT_MAP (related rows are carried "
        "in Row.related)");
  }
  if (absl::Status s =
          CheckRequestSize("BatchGet asks", request.keys_size(), "keys");
      !s.ok()) {
    return s;
  }
  lookup.load.keys.reserve(request.keys_size());
  for (int i = 0; i < request.keys_size(); ++i) {
    absl::StatusOr<std::string> canonical =
        KeyFromProto(**entity, lookup.load.key_column, request.keys(i),
                     options_.max_value_bytes);
    if (!canonical.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", i, " of entity ", (*entity)->name, ": ",
                       canonical.status().message()));
    }
    lookup.load.keys.push_back(std::move(*canonical));
  }
  return lookup;
}

void DataServiceImpl::FillResponse(const PreparedLookup& lookup,
                                   const v1::BatchGetRequest& request,
                                   const loader::LoadResult& result,
                                   v1::BatchGetResponse* response) const {
  const bool as_list = request.row_format() == v1::ROW_FORMAT_LIST;
  if (as_list) {
    response->mutable_columns()->Reserve(lookup.columns.size());
    for (int c : lookup.columns) {
      response->add_columns(lookup.entity->columns[c].name);
    }
  }
  // Rows the cache holds encoded are answered with those bytes: the same
  // row (every column, as a map), without building it again.
  const bool encoded_rows_answer = !as_list && request.columns().empty() &&
                                   lookup.includes == nullptr &&
                                   !result.wire_per_key.empty();
  response->mutable_results()->Reserve(request.keys_size());
  for (int i = 0; i < request.keys_size(); ++i) {
    v1::KeyResult* out = response->add_results();
    *out->mutable_key() = request.keys(i);
    const std::vector<storage::Row>* rows = result.rows_per_key[i];
    if (encoded_rows_answer && !result.wire_per_key[i].empty()) {
      // A cached entry with an encoding is one row. Its rows are not read:
      // on a large cache that would be one more cache miss per key.
      out->set_found(true);
      AddRowWire(out)->assign(result.wire_per_key[i].data(),
                              result.wire_per_key[i].size());
      continue;
    }
    out->set_found(rows != nullptr && !rows->empty());
    if (rows == nullptr) continue;
    for (const storage::Row& row : *rows) {
      // Written straight into the wire format (row_wire.h): no message per
      // row, no map per row.
      if (as_list) {
        AppendValueRowWire(row, lookup.columns, AddValueRowWire(out));
        continue;
      }
      if (lookup.includes == nullptr) {
        AppendRowWire(*lookup.entity, row, lookup.columns, AddRowWire(out));
        continue;
      }
      v1::Row* out_row = out->add_rows();
      RowToProto(*lookup.entity, row, lookup.columns, out_row);
      if (lookup.includes != nullptr && result.included != nullptr) {
        AttachIncluded(*lookup.includes, result.included->includes,
                       *lookup.entity, row, out_row);
      }
    }
  }
}

std::shared_ptr<loader::LoadTicket> DataServiceImpl::StartIncludeLookup(
    loader::LoadRequest request, loader::LoadCallback done) {
  auto call = std::make_shared<IncludeCall>();
  std::shared_ptr<const std::vector<loader::IncludePlan>> plans =
      std::move(request.includes);
  request.includes = nullptr;
  const storage::Entity* entity = request.entity;
  const absl::Time deadline = request.deadline;
  std::shared_ptr<loader::LoadTicket> ticket = loader_->Load(
      std::move(request),
      [this, call, plans, entity, deadline, done = std::move(done)](
          absl::StatusOr<loader::LoadResult> result) mutable {
        if (!result.ok()) {
          ForgetIncludeCall(*call);
          return std::move(done)(result.status());
        }
        auto first = std::make_shared<loader::LoadResult>(std::move(*result));
        // On the worker that answered the first level: Start never blocks.
        std::shared_ptr<loader::IncludeWalk> walk = loader::IncludeWalk::Start(
            *loader_, plans, *entity, AllRows(*first), deadline,
            [this, call, first, done = std::move(done)](
                absl::StatusOr<loader::IncludeResult> included) mutable {
              ForgetIncludeCall(*call);
              if (!included.ok()) return std::move(done)(included.status());
              first->included = std::make_shared<const loader::IncludeResult>(
                  std::move(*included));
              std::move(done)(std::move(*first));
            });
        BindWalk(*call, walk);
      });
  storage::MutexLock map_lock(&include_calls_mu_);
  storage::MutexLock lock(&call->mu);
  if (!call->finished) {
    call->ticket = ticket;
    include_calls_[ticket.get()] = call;
  }
  return ticket;
}

void DataServiceImpl::ForgetIncludeCall(IncludeCall& call) {
  std::shared_ptr<loader::LoadTicket> ticket;
  {
    storage::MutexLock lock(&call.mu);
    call.finished = true;
    call.walk = nullptr;
    ticket = std::move(call.ticket);
  }
  if (ticket == nullptr) return;
  storage::MutexLock lock(&include_calls_mu_);
  include_calls_.erase(ticket.get());
}

std::shared_ptr<loader::LoadTicket> DataServiceImpl::StartLookup(
    loader::LoadRequest request, loader::LoadCallback done) {
  if (!options_.memory_backend && request.includes != nullptr) {
    return StartIncludeLookup(std::move(request), std::move(done));
  }
  if (!options_.memory_backend)
    return loader_->Load(std::move(request), std::move(done));
  std::move(done)(MemoryLookup(request.keys, options_.memory_backend_rows));
  return nullptr;
}

void DataServiceImpl::CancelLookup(
    const std::shared_ptr<loader::LoadTicket>& ticket, absl::Status status) {
  if (loader_ == nullptr || ticket == nullptr) return;
  loader_->Cancel(ticket, status);
  // A lookup with includes may be past its first level: cancel its walk.
  std::shared_ptr<IncludeCall> call;
  {
    storage::MutexLock lock(&include_calls_mu_);
    auto it = include_calls_.find(ticket.get());
    if (it == include_calls_.end()) return;
    call = it->second;
  }
  CancelWalk(*call, status);
}

void DataServiceImpl::BindWalk(
    IncludeCall& call, const std::shared_ptr<loader::IncludeWalk>& walk) {
  std::optional<absl::Status> cancelled;
  {
    storage::MutexLock lock(&call.mu);
    if (call.finished) return;
    call.walk = walk;
    cancelled = call.cancelled;
  }
  if (cancelled.has_value()) walk->Cancel(*cancelled);
}

void DataServiceImpl::FinishWalk(IncludeCall& call) {
  storage::MutexLock lock(&call.mu);
  call.finished = true;
  call.walk = nullptr;
}

std::optional<absl::Status> DataServiceImpl::FinishIfCancelled(
    IncludeCall& call) {
  storage::MutexLock lock(&call.mu);
  if (call.cancelled.has_value()) call.finished = true;
  return call.cancelled;
}

void DataServiceImpl::CancelWalk(IncludeCall& call,
                                 const absl::Status& status) {
  std::shared_ptr<loader::IncludeWalk> walk;
  {
    storage::MutexLock lock(&call.mu);
    if (call.finished) return;
    call.cancelled = status;
    walk = call.walk;
  }
  if (walk != nullptr) walk->Cancel(status);
}

grpc::ServerUnaryReactor* DataServiceImpl::BatchGet(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return NewBatchGetReactor(*this, context, request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
DataServiceImpl::StreamBatchGet(grpc::CallbackServerContext* context) {
  return NewStreamBatchGetReactor(*this, context);
}

grpc::ServerUnaryReactor* DataServiceImpl::ServeInsert(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeRaw<v1::InsertRequest, v1::InsertResponse>(
      request, response,
      [&](RawUnaryCall<v1::InsertRequest, v1::InsertResponse>* call) {
        HandleInsert(context, call);
      });
}

void DataServiceImpl::HandleInsert(
    grpc::ServerContextBase* context,
    RawUnaryCall<v1::InsertRequest, v1::InsertResponse>* call) {
  const v1::InsertRequest* request = &call->request();
  v1::InsertResponse* response = call->response();
  if (pool_ == nullptr)
    return call->Reply(absl::UnimplementedError("no database"));
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*CurrentCatalog(), request->entity());
  if (!entity.ok()) return call->Reply(entity.status());
  if (request->rows_size() == 0) {
    return call->Reply(absl::InvalidArgumentError(
        absl::StrCat("Insert into ", (*entity)->name, " has no rows")));
  }
  if (absl::Status s =
          CheckRequestSize("Insert has", request->rows_size(), "rows");
      !s.ok()) {
    return call->Reply(s);
  }
  std::vector<storage::ColumnValues> rows;
  rows.reserve(request->rows_size());
  for (const v1::Row& row : request->rows()) {
    absl::StatusOr<storage::ColumnValues> values =
        RowFromProto(**entity, row, options_.max_value_bytes);
    if (!values.ok()) return call->Reply(values.status());
    rows.push_back(std::move(*values));
  }
  absl::StatusOr<std::optional<storage::ConflictSpec>> conflict =
      ConflictFromProto(**entity, *request);
  if (!conflict.ok()) return call->Reply(conflict.status());
  if (absl::Status s =
          storage::RequestLog::CheckRequestId(request->request_id());
      !s.ok()) {
    return call->Reply(s);
  }
  RunOnWorker(
      *pool_, context, call,
      [log = options_.request_log, cache = options_.cache, entity = *entity,
       rows = std::move(rows), conflict = std::move(*conflict), request,
       response](storage::Connection& conn) -> absl::Status {
        // Before the statement: the cache's fill token
        // (read-your-writes).
        loader::WriteThrough through(cache, *entity);
        std::vector<storage::Row> written;
        bool replayed;
        absl::Status status = WriteOnce(
            log, conn, "Insert", *request, response,
            [&](storage::Connection& c) -> absl::Status {
              if (conflict.has_value()) {
                return RunUpsert(c, *entity, rows, *conflict, response,
                                 &written);
              }
              absl::StatusOr<std::vector<storage::Row>> stored =
                  storage::InsertRows(c, *entity, rows);
              if (!stored.ok()) return stored.status();
              const std::vector<int> all = AllColumns(*entity);
              for (const storage::Row& row : *stored) {
                RowToProto(*entity, row, all, response->add_rows());
              }
              written = std::move(*stored);
              return absl::OkStatus();
            },
            &replayed);
        if (status.ok() && !replayed) {
          through.Written(written);
        } else {
          through.Forget(rows, OutcomeUnknown(status));
        }
        return status;
      });
}

grpc::ServerUnaryReactor* DataServiceImpl::ServeUpdate(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeRaw<v1::UpdateRequest, v1::UpdateResponse>(
      request, response,
      [&](RawUnaryCall<v1::UpdateRequest, v1::UpdateResponse>* call) {
        HandleUpdate(context, call);
      });
}

void DataServiceImpl::HandleUpdate(
    grpc::ServerContextBase* context,
    RawUnaryCall<v1::UpdateRequest, v1::UpdateResponse>* call) {
  const v1::UpdateRequest* request = &call->request();
  v1::UpdateResponse* response = call->response();
  if (pool_ == nullptr)
    return call->Reply(absl::UnimplementedError("no database"));
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*CurrentCatalog(), request->entity());
  if (!entity.ok()) return call->Reply(entity.status());
  absl::StatusOr<storage::ColumnValues> values =
      RowFromProto(**entity, request->row(), options_.max_value_bytes);
  if (!values.ok()) return call->Reply(values.status());
  if (absl::Status s =
          storage::RequestLog::CheckRequestId(request->request_id());
      !s.ok()) {
    return call->Reply(s);
  }
  RunOnWorker(*pool_, context, call,
              [log = options_.request_log, cache = options_.cache,
               entity = *entity, values = std::move(*values), request,
               response](storage::Connection& conn) -> absl::Status {
                loader::WriteThrough through(cache, *entity);
                std::vector<storage::Row> written;
                bool replayed;
                absl::Status status = WriteOnce(
                    log, conn, "Update", *request, response,
                    [&](storage::Connection& c) -> absl::Status {
                      absl::StatusOr<storage::Row> row =
                          storage::UpdateRow(c, *entity, values);
                      if (!row.ok()) return row.status();
                      RowToProto(*entity, *row, AllColumns(*entity),
                                 response->mutable_row());
                      written = {std::move(*row)};
                      return absl::OkStatus();
                    },
                    &replayed);
                if (status.ok() && !replayed) {
                  through.Written(written);
                } else {
                  through.Forget({values}, OutcomeUnknown(status));
                }
                return status;
              });
}

grpc::ServerUnaryReactor* DataServiceImpl::ServeDelete(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeRaw<v1::DeleteRequest, v1::DeleteResponse>(
      request, response,
      [&](RawUnaryCall<v1::DeleteRequest, v1::DeleteResponse>* call) {
        HandleDelete(context, call);
      });
}

void DataServiceImpl::HandleDelete(
    grpc::ServerContextBase* context,
    RawUnaryCall<v1::DeleteRequest, v1::DeleteResponse>* call) {
  const v1::DeleteRequest* request = &call->request();
  v1::DeleteResponse* response = call->response();
  if (pool_ == nullptr)
    return call->Reply(absl::UnimplementedError("no database"));
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*CurrentCatalog(), request->entity());
  if (!entity.ok()) return call->Reply(entity.status());
  if (absl::Status s =
          CheckRequestSize("Delete asks", request->keys_size(), "keys");
      !s.ok()) {
    return call->Reply(s);
  }
  std::vector<storage::Value> keys;
  // An entity with a composite key is deleted by canonical key texts.
  std::vector<std::string> composite_keys;
  keys.reserve(request->keys_size());
  for (int i = 0; i < request->keys_size(); ++i) {
    if ((*entity)->composite_key()) {
      absl::StatusOr<std::string> key =
          KeyFromProto(**entity, storage::kCompositeKeyColumn, request->keys(i),
                       options_.max_value_bytes);
      if (!key.ok()) {
        return call->Reply(absl::InvalidArgumentError(
            absl::StrCat("key ", i, " of entity ", (*entity)->name, ": ",
                         key.status().message())));
      }
      composite_keys.push_back(std::move(*key));
      continue;
    }
    absl::StatusOr<storage::Value> value = ValueFromProto(
        request->keys(i), (*entity)->key().name, options_.max_value_bytes);
    if (!value.ok()) return call->Reply(value.status());
    keys.push_back(std::move(*value));
  }
  std::optional<storage::Value> expected;
  if (request->has_expected_version()) {
    absl::StatusOr<storage::Value> value =
        ValueFromProto(request->expected_version(), "expected_version",
                       options_.max_value_bytes);
    if (!value.ok()) return call->Reply(value.status());
    expected = std::move(*value);
  }
  if (absl::Status s =
          storage::RequestLog::CheckRequestId(request->request_id());
      !s.ok()) {
    return call->Reply(s);
  }
  RunOnWorker(
      *pool_, context, call,
      [log = options_.request_log, cache = options_.cache, entity = *entity,
       keys = std::move(keys), composite_keys = std::move(composite_keys),
       expected, request, response](storage::Connection& conn) -> absl::Status {
        loader::WriteThrough through(cache, *entity);
        std::vector<storage::Value> gone, kept;
        bool replayed;
        absl::Status status = WriteOnce(
            log, conn, "Delete", *request, response,
            [&](storage::Connection& c) -> absl::Status {
              // An entity with a composite key is deleted by key
              // texts; the cache never holds it (keys stays empty).
              absl::StatusOr<std::vector<bool>> deleted =
                  entity->composite_key()
                      ? storage::DeleteRowsForKeys(c, *entity, composite_keys,
                                                   expected)
                      : storage::DeleteRows(c, *entity, keys, expected);
              if (!deleted.ok()) return deleted.status();
              gone.clear();
              kept.clear();
              for (size_t i = 0; i < deleted->size(); ++i) {
                if ((*deleted)[i]) {
                  *response->add_deleted_keys() = request->keys(i);
                }
                if (i >= keys.size()) continue;
                ((*deleted)[i] ? gone : kept).push_back(keys[i]);
              }
              return absl::OkStatus();
            },
            &replayed);
        if (status.ok() && !replayed) {
          through.Deleted(gone);
          through.Forget(kept);
        } else {
          through.Forget(keys);
        }
        return status;
      });
}

grpc::ServerUnaryReactor* DataServiceImpl::ServePage(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeRaw<v1::PageRequest, v1::PageResponse>(
      request, response,
      [&](RawUnaryCall<v1::PageRequest, v1::PageResponse>* call) {
        HandlePage(context, call);
      });
}

void DataServiceImpl::HandlePage(
    grpc::ServerContextBase* context,
    RawUnaryCall<v1::PageRequest, v1::PageResponse>* call) {
  const v1::PageRequest* request = &call->request();
  v1::PageResponse* response = call->response();
  if (pool_ == nullptr)
    return call->Reply(absl::UnimplementedError("no database"));
  const std::shared_ptr<const storage::Catalog> catalog = CurrentCatalog();
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*catalog, request->entity());
  if (!entity.ok()) return call->Reply(entity.status());
  absl::StatusOr<std::vector<int>> columns =
      ResolveColumns(**entity, request->columns());
  if (!columns.ok()) return call->Reply(columns.status());
  if (request->page_size() < 0) {
    return call->Reply(absl::InvalidArgumentError(absl::StrCat(
        "page_size must not be negative (got ", request->page_size(), ")")));
  }
  if (request->offset() < 0) {
    return call->Reply(absl::InvalidArgumentError(absl::StrCat(
        "offset must not be negative (got ", request->offset(), ")")));
  }
  if (request->offset() > options_.max_page_offset) {
    return call->Reply(absl::InvalidArgumentError(absl::StrCat(
        "offset ", request->offset(), " is over ", options_.max_page_offset,
        " (--max_page_offset): PostgreSQL reads every row skipped; page with "
        "next_page_token instead, which costs the same at any depth")));
  }
  if (static_cast<size_t>(request->filters_size()) >
      options_.max_filters_per_page) {
    return call->Reply(absl::InvalidArgumentError(
        absl::StrCat("Page has ", request->filters_size(), " filters; at most ",
                     options_.max_filters_per_page,
                     " are allowed (--max_filters_per_page)")));
  }
  // Past the last column (and the key, which ends the order) more terms
  // change nothing; a bound keeps the statement and its token small.
  constexpr int kMaxOrderBy = 32;
  if (request->order_by_size() > kMaxOrderBy) {
    return call->Reply(absl::InvalidArgumentError(absl::StrCat(
        "Page has ", request->order_by_size(), " order_by terms; at most ",
        kMaxOrderBy, " are allowed")));
  }
  storage::PageQuery query;
  // 0 means the default; neither the default nor a request exceeds the cap.
  query.limit = std::min(request->page_size() == 0 ? options_.default_page_size
                                                   : request->page_size(),
                         options_.page_size_cap);
  query.offset = request->offset();
  query.page_token = request->page_token();
  for (const v1::Filter& f : request->filters()) {
    absl::StatusOr<int> column = FindColumn(**entity, f.column());
    if (!column.ok()) return call->Reply(column.status());
    storage::FilterSpec spec;
    spec.column = *column;
    switch (f.op()) {
      case v1::Filter::EQUAL:
        spec.op = storage::FilterOp::kEqual;
        break;
      case v1::Filter::NOT_EQUAL:
        spec.op = storage::FilterOp::kNotEqual;
        break;
      case v1::Filter::LESS:
        spec.op = storage::FilterOp::kLess;
        break;
      case v1::Filter::LESS_OR_EQUAL:
        spec.op = storage::FilterOp::kLessOrEqual;
        break;
      case v1::Filter::GREATER:
        spec.op = storage::FilterOp::kGreater;
        break;
      case v1::Filter::GREATER_OR_EQUAL:
        spec.op = storage::FilterOp::kGreaterOrEqual;
        break;
      case v1::Filter::IN:
        spec.op = storage::FilterOp::kIn;
        break;
      case v1::Filter::IS_NULL:
        spec.op = storage::FilterOp::kIsNull;
        break;
      case v1::Filter::IS_NOT_NULL:
        spec.op = storage::FilterOp::kIsNotNull;
        break;
      default:
        return call->Reply(absl::InvalidArgumentError(
            absl::StrCat("filter on \"", storage::Abbreviate(f.column()),
                         "\" has no operator (op)")));
    }
    const std::string& column_name = (*entity)->columns[*column].name;
    if (spec.op == storage::FilterOp::kIn) {
      if (static_cast<size_t>(f.values_size()) > options_.max_in_values) {
        return call->Reply(absl::InvalidArgumentError(absl::StrCat(
            "IN filter on \"", column_name, "\" has ", f.values_size(),
            " values; at most ", options_.max_in_values,
            " are allowed (--max_in_values)")));
      }
      for (const v1::Value& v : f.values()) {
        absl::StatusOr<storage::Value> value =
            ValueFromProto(v, column_name, options_.max_value_bytes);
        if (!value.ok()) return call->Reply(value.status());
        spec.values.push_back(std::move(*value));
      }
    } else if (spec.op != storage::FilterOp::kIsNull &&
               spec.op != storage::FilterOp::kIsNotNull) {
      absl::StatusOr<storage::Value> value =
          ValueFromProto(f.value(), column_name, options_.max_value_bytes);
      if (!value.ok()) return call->Reply(value.status());
      spec.values.push_back(std::move(*value));
    }
    query.filters.push_back(std::move(spec));
  }
  for (const v1::OrderBy& o : request->order_by()) {
    absl::StatusOr<int> column = FindColumn(**entity, o.column());
    if (!column.ok()) return call->Reply(column.status());
    query.order.push_back({*column, o.descending()});
  }
  absl::StatusOr<std::shared_ptr<const std::vector<loader::IncludePlan>>>
      includes = ResolveIncludes(*catalog, **entity, request->includes(),
                                 options_.max_include_depth);
  if (!includes.ok()) return call->Reply(includes.status());
  if (*includes != nullptr) {
    return PageWithIncludes(context, call, *entity, std::move(query),
                            std::move(*columns), std::move(*includes));
  }
  RunOnWorker(*pool_, context, call,
              [entity = *entity, query = std::move(query),
               columns = std::move(*columns), cache = options_.cache,
               response](storage::Connection& conn) -> absl::Status {
                // Page's rows prime the cache, under the fill protocol.
                loader::WriteThrough through(cache, *entity);
                absl::StatusOr<storage::PageResult> page =
                    storage::FetchPage(conn, *entity, query);
                if (!page.ok()) return page.status();
                for (const storage::Row& row : page->rows) {
                  RowToProto(*entity, row, columns, response->add_rows());
                }
                through.Read(page->rows);
                response->set_next_page_token(std::move(page->next_page_token));
                return absl::OkStatus();
              });
}

void DataServiceImpl::PageWithIncludes(
    grpc::ServerContextBase* context,
    RawUnaryCall<v1::PageRequest, v1::PageResponse>* call,
    const storage::Entity* entity, storage::PageQuery query,
    std::vector<int> columns,
    std::shared_ptr<const std::vector<loader::IncludePlan>> includes) {
  const absl::Time deadline = DeadlineOf(context);
  // The walk, once started, for the call's OnCancel: a cancelled Page stops
  // its lookups instead of leaving them to run for nobody, and its own
  // query in PostgreSQL, as RunOnWorker's calls do.
  auto walking = std::make_shared<IncludeCall>();
  auto cancel = std::make_shared<storage::StatementCancel>();
  call->set_on_cancel([walking, cancel, context] {
    cancel->Cancel();
    CancelWalk(*walking, CancellationStatus(context));
  });
  absl::Status queued = pool_->TryPost([this, call, entity, deadline, walking,
                                        cancel, query = std::move(query),
                                        columns = std::move(columns),
                                        includes = std::move(includes)](
                                           storage::Connection& conn) mutable {
    conn.set_deadline(deadline);
    absl::StatusOr<storage::PageResult> fetched = [&] {
      storage::ScopedStatementCancel scoped(conn, cancel.get());
      return storage::FetchPage(conn, *entity, query);
    }();
    if (!fetched.ok()) return call->Reply(fetched.status());
    if (std::optional<absl::Status> cancelled = FinishIfCancelled(*walking)) {
      return call->Reply(*cancelled);
    }
    auto page = std::make_shared<storage::PageResult>(std::move(*fetched));
    std::vector<const storage::Row*> rows;
    for (const storage::Row& row : page->rows) rows.push_back(&row);
    // Never blocks: the walk's lookups run on other workers (or this
    // one, once this task returns).
    std::shared_ptr<loader::IncludeWalk> walk = loader::IncludeWalk::Start(
        *loader_, includes, *entity, std::move(rows), deadline,
        [call, entity, page, includes, walking, columns = std::move(columns)](
            absl::StatusOr<loader::IncludeResult> included) {
          FinishWalk(*walking);
          if (!included.ok()) return call->Reply(included.status());
          v1::PageResponse* response = call->response();
          for (const storage::Row& row : page->rows) {
            v1::Row* out = response->add_rows();
            RowToProto(*entity, row, columns, out);
            AttachIncluded(*includes, included->includes, *entity, row, out);
          }
          response->set_next_page_token(page->next_page_token);
          call->Reply(absl::OkStatus());
        });
    // OnCancel may have come while the walk was starting.
    BindWalk(*walking, walk);
  });
  if (!queued.ok()) call->Reply(queued);
}

grpc::ServerUnaryReactor* DataServiceImpl::ServeListEntities(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeRaw<v1::ListEntitiesRequest, v1::ListEntitiesResponse>(
      request, response,
      [&](RawUnaryCall<v1::ListEntitiesRequest, v1::ListEntitiesResponse>*
              call) { HandleListEntities(context, call); });
}

void DataServiceImpl::HandleListEntities(
    grpc::ServerContextBase* /*context*/,
    RawUnaryCall<v1::ListEntitiesRequest, v1::ListEntitiesResponse>* call) {
  v1::ListEntitiesResponse* response = call->response();
  const std::shared_ptr<const storage::Catalog> catalog = CurrentCatalog();
  for (const storage::Entity& entity : catalog->entities()) {
    service::DescribeEntity(entity, response->add_entities());
  }
  return call->Reply(absl::OkStatus());
}

grpc::ServerUnaryReactor* DataServiceImpl::ServeDescribeEntity(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ServeRaw<v1::DescribeEntityRequest, v1::EntityDescription>(
      request, response,
      [&](RawUnaryCall<v1::DescribeEntityRequest, v1::EntityDescription>*
              call) { HandleDescribeEntity(context, call); });
}

void DataServiceImpl::HandleDescribeEntity(
    grpc::ServerContextBase* /*context*/,
    RawUnaryCall<v1::DescribeEntityRequest, v1::EntityDescription>* call) {
  const v1::DescribeEntityRequest* request = &call->request();
  v1::EntityDescription* response = call->response();
  absl::StatusOr<const storage::Entity*> entity =
      FindEntity(*CurrentCatalog(), request->entity());
  if (!entity.ok()) return call->Reply(entity.status());
  service::DescribeEntity(**entity, response);
  return call->Reply(absl::OkStatus());
}

}  // namespace rowgate::service
