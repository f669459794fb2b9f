// DataService.Transact: an ordered list of Insert (or upsert), Update and
// Delete operations in one PostgreSQL transaction.
//
// On the gRPC thread the request's shape is checked (size, every operation
// set, references only to earlier operations, no request_id on an
// operation); the rest runs on one database worker: for each operation in
// order, its references are replaced by the values earlier results hold,
// it is translated as the single RPC would (service/write_ops.h) and run.
// The first failure rolls everything back and answers with its code and
// "operation i (Method entity): " before its message.
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "loader/write_through.h"
#include "service/data_service.h"
#include "service/proto_convert.h"
#include "service/worker_call.h"
#include "service/write_ops.h"
#include "storage/transaction_ops.h"

namespace rowgate::service {
namespace {

using TransactCall = RawUnaryCall<v1::TransactRequest, v1::TransactResponse>;

// "Insert users", for messages.
std::string Describe(const v1::Operation& op) {
  switch (op.kind_case()) {
    case v1::Operation::kInsert:
      return absl::StrCat(op.insert().has_on_conflict() ? "Upsert" : "Insert",
                          " ", storage::Abbreviate(op.insert().entity()));
    case v1::Operation::kUpdate:
      return absl::StrCat("Update ", storage::Abbreviate(op.update().entity()));
    case v1::Operation::kDelete:
      return absl::StrCat("Delete ",
                          storage::Abbreviate(op.delete_().entity()));
    default:
      return "no write";
  }
}

absl::Status AtOperation(int index, const v1::Operation& op,
                         const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("operation ", index, " (", Describe(op),
                                   "): ", status.message()));
}

// Whether a failed transaction may have committed (as data_service.cc's).
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

const std::string& EntityName(const v1::Operation& op) {
  switch (op.kind_case()) {
    case v1::Operation::kInsert:
      return op.insert().entity();
    case v1::Operation::kUpdate:
      return op.update().entity();
    default:
      return op.delete_().entity();
  }
}

// Keeps the row cache coherent with one transaction: a WriteThrough per
// operation, made before BEGIN (so each captures its fill token before any
// statement), told after COMMIT what the operations changed.
class TransactionThrough {
 public:
  TransactionThrough(loader::RowCache* cache, const storage::Catalog& catalog,
                     const v1::TransactRequest& request)
      : touched_(request.operations_size()) {
    for (const v1::Operation& op : request.operations()) {
      const storage::Entity* entity = catalog.Find(EntityName(op));
      // The cache holds single-column keys only (see loader/row_cache.h).
      if (entity != nullptr && entity->composite_key()) entity = nullptr;
      entities_.push_back(entity);
      throughs_.push_back(
          entity == nullptr
              ? nullptr
              : std::make_unique<loader::WriteThrough>(cache, *entity));
    }
  }
  Touched* touched(int op) { return &touched_[op]; }

  void Done(const absl::Status& status, bool replayed) {
    const bool committed = status.ok() && !replayed;
    const bool unknown = !status.ok() && OutcomeUnknown(status);
    for (size_t i = 0; i < throughs_.size(); ++i) {
      if (throughs_[i] == nullptr) continue;
      const Touched& t = touched_[i];
      if (committed) {
        throughs_[i]->Written(t.written);
        throughs_[i]->Deleted(t.deleted);
      } else if (unknown) {
        std::vector<storage::Value> keys = t.deleted;
        for (const storage::Row& row : t.written) {
          keys.push_back(row[entities_[i]->primary_key]);
        }
        throughs_[i]->Forget(keys);
      }
    }
  }

 private:
  std::vector<const storage::Entity*> entities_;
  std::vector<std::unique_ptr<loader::WriteThrough>> throughs_;
  std::vector<Touched> touched_;
};

// Calls `visit(value)` for every Value an operation carries.
template <typename Visit>
absl::Status ForEachValue(v1::Operation& op, Visit visit) {
  auto row = [&](v1::Row& r) -> absl::Status {
    for (auto& [name, value] : *r.mutable_fields()) {
      if (absl::Status s = visit(value); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  switch (op.kind_case()) {
    case v1::Operation::kInsert:
      for (v1::Row& r : *op.mutable_insert()->mutable_rows()) {
        if (absl::Status s = row(r); !s.ok()) return s;
      }
      return absl::OkStatus();
    case v1::Operation::kUpdate:
      return row(*op.mutable_update()->mutable_row());
    case v1::Operation::kDelete:
      for (v1::Value& key : *op.mutable_delete_()->mutable_keys()) {
        if (absl::Status s = visit(key); !s.ok()) return s;
        // A composite key's parts may be references too.
        if (key.kind_case() != v1::Value::kListValue) continue;
        for (v1::Value& part : *key.mutable_list_value()->mutable_values()) {
          if (absl::Status s = visit(part); !s.ok()) return s;
        }
      }
      if (op.delete_().has_expected_version()) {
        return visit(*op.mutable_delete_()->mutable_expected_version());
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// The value `ref` names in `results` (the results of the operations before
// the one holding it).
absl::StatusOr<v1::Value> Resolve(const v1::ValueReference& ref,
                                  const v1::TransactResponse& results) {
  const std::string what = absl::StrCat(
      "the reference to column \"", storage::Abbreviate(ref.column()),
      "\" of row ", ref.row(), " of operation ", ref.operation());
  const v1::OperationResult& result =
      results.results(static_cast<int>(ref.operation()));
  const v1::Row* row = nullptr;
  switch (result.kind_case()) {
    case v1::OperationResult::kInsert:
      if (ref.row() < static_cast<uint32_t>(result.insert().rows_size())) {
        row = &result.insert().rows(static_cast<int>(ref.row()));
      }
      break;
    case v1::OperationResult::kUpdate:
      if (ref.row() == 0) row = &result.update().row();
      break;
    case v1::OperationResult::kDelete: {
      const auto& keys = result.delete_().deleted_keys();
      if (ref.row() >= static_cast<uint32_t>(keys.size())) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": that Delete deleted ", keys.size(), " rows"));
      }
      return keys[static_cast<int>(ref.row())];
    }
    default:
      break;
  }
  if (row == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": its result has no such row"));
  }
  auto it = row->fields().find(ref.column());
  if (it == row->fields().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": its result row has no such column"));
  }
  return it->second;
}

// The shape checks that need no database.
absl::Status CheckShape(const v1::TransactRequest& request,
                        size_t max_operations) {
  if (request.operations_size() == 0) {
    return absl::InvalidArgumentError("Transact has no operations");
  }
  if (static_cast<size_t>(request.operations_size()) > max_operations) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Transact has ", request.operations_size(), " operations; at most ",
        max_operations, " are allowed (--max_operations_per_transaction)"));
  }
  if (absl::Status s =
          storage::RequestLog::CheckRequestId(request.request_id());
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < request.operations_size(); ++i) {
    v1::Operation op = request.operations(i);
    if (op.kind_case() == v1::Operation::KIND_NOT_SET) {
      return AtOperation(
          i, op,
          absl::InvalidArgumentError("set one of insert, update or delete"));
    }
    absl::Status refs = ForEachValue(op, [&](v1::Value& value) {
      if (value.kind_case() != v1::Value::kReference) return absl::OkStatus();
      if (value.reference().operation() >= static_cast<uint32_t>(i)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a reference names operation ", value.reference().operation(),
            "; only earlier operations can be referred to"));
      }
      return absl::OkStatus();
    });
    if (!refs.ok()) return AtOperation(i, op, refs);
  }
  return absl::OkStatus();
}

// Runs every operation on `conn`, inside the caller's transaction, filling
// `response`. Blocks.
absl::Status RunOperations(storage::Connection& conn,
                           const storage::Catalog& catalog,
                           const WriteLimits& limits,
                           const v1::TransactRequest& request,
                           v1::TransactResponse* response,
                           TransactionThrough& through) {
  const storage::BackendGuard guard(conn);
  for (int i = 0; i < request.operations_size(); ++i) {
    v1::Operation op = request.operations(i);
    absl::Status status = ForEachValue(op, [&](v1::Value& value) {
      if (value.kind_case() != v1::Value::kReference) return absl::OkStatus();
      absl::StatusOr<v1::Value> resolved =
          Resolve(value.reference(), *response);
      if (!resolved.ok()) return resolved.status();
      value = std::move(*resolved);
      return absl::OkStatus();
    });
    v1::OperationResult* result = response->add_results();
    if (status.ok()) {
      switch (op.kind_case()) {
        case v1::Operation::kInsert: {
          absl::StatusOr<InsertWrite> write =
              InsertFromProto(catalog, op.insert(), limits);
          status = write.ok()
                       ? RunInsert(conn, *write, result->mutable_insert(),
                                   through.touched(i))
                       : write.status();
          break;
        }
        case v1::Operation::kUpdate: {
          absl::StatusOr<UpdateWrite> write =
              UpdateFromProto(catalog, op.update(), limits);
          status = write.ok()
                       ? RunUpdate(conn, *write, result->mutable_update(),
                                   through.touched(i))
                       : write.status();
          break;
        }
        case v1::Operation::kDelete: {
          absl::StatusOr<DeleteWrite> write =
              DeleteFromProto(catalog, op.delete_(), limits);
          status = write.ok() ? RunDelete(conn, *write, op.delete_(),
                                          result->mutable_delete_(),
                                          through.touched(i))
                              : write.status();
          break;
        }
        default:
          status = absl::InvalidArgumentError("no write");
      }
    }
    if (status.ok()) status = guard.Check();
    if (!status.ok()) return AtOperation(i, request.operations(i), status);
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* DataServiceImpl::ServeTransact(
    grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  auto* call = new TransactCall(request, response);
  if (call->parsed()) HandleTransact(context, call);
  return call;
}

void DataServiceImpl::HandleTransact(grpc::ServerContextBase* context,
                                     TransactCall* call) {
  if (pool_ == nullptr) {
    return call->Reply(absl::UnimplementedError("no database"));
  }
  const v1::TransactRequest* request = &call->request();
  v1::TransactResponse* response = call->response();
  if (absl::Status s =
          CheckShape(*request, options_.max_operations_per_transaction);
      !s.ok()) {
    return call->Reply(s);
  }
  calls::RunOnWorker(
      *pool_, context, call,
      [log = options_.request_log, cache = options_.cache,
       catalog = CurrentCatalog(),
       limits =
           WriteLimits{options_.max_keys_per_request, options_.max_value_bytes},
       request, response](storage::Connection& conn) -> absl::Status {
        TransactionThrough through(cache, *catalog, *request);
        auto body = [&](storage::Connection& c) {
          return RunOperations(c, *catalog, limits, *request, response,
                               through);
        };
        absl::Status status;
        bool replayed = false;
        if (request->request_id().empty()) {
          status = storage::RunInTransaction(
              conn, [&](storage::Connection& c, const storage::BackendGuard&) {
                return body(c);
              });
        } else {
          // The request log's own transaction holds the operations too.
          status = calls::WriteLogged(log, conn, "Transact", *request, response,
                                      body, &replayed);
        }
        through.Done(status, replayed);
        return status;
      });
}

}  // namespace rowgate::service
