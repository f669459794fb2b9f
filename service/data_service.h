// rowgate.v1.DataService on gRPC's callback API.
//
// Handlers validate and translate the request on the gRPC thread, then hand
// the work over: BatchGet to the loader, the other database RPCs to the
// worker pool. Replies are finished from the worker that did the work, so no
// gRPC thread ever waits on PostgreSQL. A cancelled call or a passed deadline
// is answered at once and dropped from the loader's batches.
//
// Thread-safe. Must outlive the grpc::Server it is registered with; the
// catalog, loader and pool it is given must outlive it.
#ifndef ROWGATE_SERVICE_DATA_SERVICE_H_
#define ROWGATE_SERVICE_DATA_SERVICE_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "loader/batch_loader.h"
#include "loader/include_walk.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "service/raw_call.h"
#include "storage/catalog.h"
#include "storage/live_catalog.h"
#include "storage/mutex.h"
#include "storage/request_log.h"
#include "storage/worker_pool.h"

namespace rowgate::service {

struct DataServiceOptions {
  size_t max_keys_per_request = 1000;
  // Request limits past which a call is INVALID_ARGUMENT naming the limit
  // (README "Limits").
  size_t max_filters_per_page = 64;
  size_t max_in_values = 1000;
  size_t max_value_bytes = 1 << 20;
  int default_page_size = 50;
  int page_size_cap = 1000;
  // Rows a Page may skip with `offset`: PostgreSQL reads and discards every
  // skipped row, so one call could make it read a whole table.
  int64_t max_page_offset = 100000;
  size_t max_inflight_per_stream = 1024;
  // The gRPC ceiling for benchmarks: BatchGet answers from synthesized rows
  // in memory (keys 1..memory_backend_rows exist), never touching a database.
  bool memory_backend = false;
  int64_t memory_backend_rows = 1000000;
  // Where Insert/Update/Delete with a request_id are deduplicated (must
  // outlive the service); null: such writes answer FAILED_PRECONDITION.
  const storage::RequestLog* request_log = nullptr;
  // The row cache Insert/Update/Delete keep current and Page primes (must
  // outlive the service); null: no cache. BatchGet reaches it through the
  // loader.
  loader::RowCache* cache = nullptr;
  // Operations one Transact may hold.
  size_t max_operations_per_transaction = 100;
  // Include levels a BatchGet or Page may ask for (--max_include_depth).
  int max_include_depth = 3;
};

// A BatchGet request checked against the catalog, ready for the loader.
struct PreparedLookup {
  const storage::Entity* entity = nullptr;
  std::vector<int> columns;
  loader::LoadRequest load;
  // The request's includes (also in load.includes, which StartLookup
  // consumes); FillResponse writes what they found.
  std::shared_ptr<const std::vector<loader::IncludePlan>> includes;
};

// Every method is served raw (see raw_call.h): requests are parsed here, so
// one that cannot be parsed is INVALID_ARGUMENT, not gRPC's UNIMPLEMENTED.
using RawDataService = v1::DataService::WithRawCallbackMethod_BatchGet<
    v1::DataService::WithRawCallbackMethod_StreamBatchGet<
        v1::DataService::WithRawCallbackMethod_Insert<
            v1::DataService::WithRawCallbackMethod_Update<
                v1::DataService::WithRawCallbackMethod_Delete<
                    v1::DataService::WithRawCallbackMethod_Page<
                        v1::DataService::WithRawCallbackMethod_ListEntities<
                            v1::DataService::
                                WithRawCallbackMethod_DescribeEntity<
                                    v1::DataService::
                                        WithRawCallbackMethod_Transact<
                                            v1::DataService::Service>>>>>>>>>;

class DataServiceImpl final : public RawDataService {
 public:
  // `pool` may be null only with options.memory_backend.
  DataServiceImpl(DataServiceOptions options,
                  std::shared_ptr<const storage::Catalog> catalog,
                  loader::Loader* loader, storage::WorkerPool* pool);
  // Serving whatever `catalog` holds at each call (a migration applied
  // while running is picked up).
  DataServiceImpl(DataServiceOptions options,
                  std::shared_ptr<storage::LiveCatalog> catalog,
                  loader::Loader* loader, storage::WorkerPool* pool);

  grpc::ServerUnaryReactor* BatchGet(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamBatchGet(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Insert(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    return ServeInsert(context, request, response);
  }
  grpc::ServerUnaryReactor* Update(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    return ServeUpdate(context, request, response);
  }
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    return ServeDelete(context, request, response);
  }
  grpc::ServerUnaryReactor* Page(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override {
    return ServePage(context, request, response);
  }
  grpc::ServerUnaryReactor* ListEntities(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override {
    return ServeListEntities(context, request, response);
  }
  grpc::ServerUnaryReactor* DescribeEntity(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override {
    return ServeDescribeEntity(context, request, response);
  }
  grpc::ServerUnaryReactor* Transact(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override {
    return ServeTransact(context, request, response);
  }

  // The same methods whichever API serves the call: the callback overrides
  // above forward here, and the completion-queue server (service/cq_server.h)
  // calls these with its grpc::ServerContext. Each parses the raw request,
  // returns the call's reactor and never blocks. Transact is in
  // transact_handler.cc.
  grpc::ServerUnaryReactor* ServeInsert(grpc::ServerContextBase* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServeUpdate(grpc::ServerContextBase* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServeDelete(grpc::ServerContextBase* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServePage(grpc::ServerContextBase* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServeListEntities(grpc::ServerContextBase* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServeDescribeEntity(
      grpc::ServerContextBase* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServeTransact(grpc::ServerContextBase* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response);

  // Shared by the unary and the streaming BatchGet.
  absl::StatusOr<PreparedLookup> PrepareLookup(
      const v1::BatchGetRequest& request) const;
  void FillResponse(const PreparedLookup& lookup,
                    const v1::BatchGetRequest& request,
                    const loader::LoadResult& result,
                    v1::BatchGetResponse* response) const;
  // Starts a lookup: through the loader, or answered inline from memory in
  // memory_backend mode. `done` runs exactly once. With request.includes,
  // the relations are walked (loader::IncludeWalk) once the rows are in,
  // and `done` gets them in LoadResult::included; CancelLookup cancels the
  // walk too.
  std::shared_ptr<loader::LoadTicket> StartLookup(loader::LoadRequest request,
                                                  loader::LoadCallback done);
  void CancelLookup(const std::shared_ptr<loader::LoadTicket>& ticket,
                    absl::Status status);
  const DataServiceOptions& options() const { return options_; }

 private:
  // INVALID_ARGUMENT when `count` exceeds max_keys_per_request, e.g.
  // "Insert has 1200 rows; at most 1000 are allowed per request".
  absl::Status CheckRequestSize(absl::string_view what, int count,
                                absl::string_view unit) const;

  // The typed handlers behind the raw methods; each ends in call->Reply().
  void HandleInsert(grpc::ServerContextBase* context,
                    RawUnaryCall<v1::InsertRequest, v1::InsertResponse>* call);
  void HandleUpdate(grpc::ServerContextBase* context,
                    RawUnaryCall<v1::UpdateRequest, v1::UpdateResponse>* call);
  void HandleDelete(grpc::ServerContextBase* context,
                    RawUnaryCall<v1::DeleteRequest, v1::DeleteResponse>* call);
  void HandlePage(grpc::ServerContextBase* context,
                  RawUnaryCall<v1::PageRequest, v1::PageResponse>* call);
  // The page is read on a worker, then its includes are walked through the
  // loader; the reply is finished from the walk's last lookup.
  void PageWithIncludes(
      grpc::ServerContextBase* context,
      RawUnaryCall<v1::PageRequest, v1::PageResponse>* call,
      const storage::Entity* entity, storage::PageQuery query,
      std::vector<int> columns,
      std::shared_ptr<const std::vector<loader::IncludePlan>> includes);
  void HandleListEntities(
      grpc::ServerContextBase* context,
      RawUnaryCall<v1::ListEntitiesRequest, v1::ListEntitiesResponse>* call);
  void HandleDescribeEntity(
      grpc::ServerContextBase* context,
      RawUnaryCall<v1::DescribeEntityRequest, v1::EntityDescription>* call);
  void HandleTransact(
      grpc::ServerContextBase* context,
      RawUnaryCall<v1::TransactRequest, v1::TransactResponse>* call);
  // The catalog calls are served from now; it stays alive while held.
  std::shared_ptr<const storage::Catalog> CurrentCatalog() const {
    return catalog_->Current();
  }

  // A lookup with includes (its walk, once started, for CancelLookup), or a
  // Page with includes (its walk, for the call's OnCancel).
  struct IncludeCall {
    storage::Mutex mu;
    std::shared_ptr<loader::IncludeWalk> walk ABSL_GUARDED_BY(mu);
    std::optional<absl::Status> cancelled ABSL_GUARDED_BY(mu);
    bool finished ABSL_GUARDED_BY(mu) = false;
    std::shared_ptr<loader::LoadTicket> ticket ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<loader::LoadTicket> StartIncludeLookup(
      loader::LoadRequest request, loader::LoadCallback done);
  void ForgetIncludeCall(IncludeCall& call);
  // Keeps `walk` for a later cancellation, or cancels it now if the call
  // was cancelled while it started. Never blocks.
  static void BindWalk(IncludeCall& call,
                       const std::shared_ptr<loader::IncludeWalk>& walk);
  // Records the cancellation and cancels the walk, if one is bound and the
  // call is not finished. Never blocks.
  static void CancelWalk(IncludeCall& call, const absl::Status& status);
  // Marks the call finished (its walk answered): a cancellation from now on
  // finds nothing to do. Never blocks.
  static void FinishWalk(IncludeCall& call);
  // If the call was cancelled, marks it finished and returns why: a walk
  // not yet started then need not start. Never blocks.
  static std::optional<absl::Status> FinishIfCancelled(IncludeCall& call);

  const DataServiceOptions options_;
  const std::shared_ptr<storage::LiveCatalog> catalog_;
  loader::Loader* const loader_;
  storage::WorkerPool* const pool_;
  storage::Mutex include_calls_mu_;
  absl::flat_hash_map<const loader::LoadTicket*, std::shared_ptr<IncludeCall>>
      include_calls_ ABSL_GUARDED_BY(include_calls_mu_);
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_DATA_SERVICE_H_
