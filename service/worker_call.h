// Running a unary call's work on a database worker, and a write through the
// request log, for handlers outside data_service.cc (Transact). The same
// steps as data_service.cc's own helpers of these names, which can move
// here once the handlers there settle.
//
// RunOnWorker never blocks (it queues); WriteOnce blocks and is for worker
// lambdas only.
#ifndef ROWGATE_SERVICE_WORKER_CALL_H_
#define ROWGATE_SERVICE_WORKER_CALL_H_

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <grpcpp/support/server_callback.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/call_context.h"
#include "storage/connection.h"
#include "storage/request_log.h"
#include "storage/worker_pool.h"

namespace rowgate::service::calls {

// Runs `work(conn)` on a database worker and replies to `call` with its
// status; RESOURCE_EXHAUSTED at once when the pool's queue is full. The
// connection's deadline is the call's, and a call the client cancels
// cancels its statement in PostgreSQL (a write not yet committed rolls
// back): a Page or a write nobody waits for must not hold one of the
// pool's connections until it ends. Sets the call's on_cancel: call it
// from the handler, before it returns.
template <typename Call, typename Work>
void RunOnWorker(storage::WorkerPool& pool, grpc::ServerContextBase* context,
                 Call* call, Work work) {
  auto cancel = std::make_shared<storage::StatementCancel>();
  call->set_on_cancel([cancel] { cancel->Cancel(); });
  absl::Status queued =
      pool.TryPost([call, cancel, deadline = DeadlineOf(context),
                    work = std::move(work)](storage::Connection& conn) mutable {
        conn.set_deadline(deadline);
        absl::Status status;
        {
          storage::ScopedStatementCancel scoped(conn, cancel.get());
          status = work(conn);
        }
        call->Reply(status);
      });
  if (!queued.ok()) call->Reply(queued);
}

// A message's deterministic serialization (map entries sorted), so equal
// requests give equal bytes for the request log's fingerprint.
template <typename Message>
std::string DeterministicBytes(const Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

// With a request_id: runs `write(conn)` (which fills `*response`) inside the
// request log's transaction, at most once per id, a retry answered from
// the log (then `*replayed` is set). `request` must have a non-empty
// request_id.
template <typename Request, typename Response, typename Write>
absl::Status WriteLogged(const storage::RequestLog* log,
                         storage::Connection& conn, absl::string_view method,
                         const Request& request, Response* response,
                         Write write, bool* replayed) {
  *replayed = false;
  if (log == nullptr) {
    return absl::FailedPreconditionError(
        "request_id is not supported by this server (no request log)");
  }
  Request unkeyed = request;
  unkeyed.clear_request_id();
  absl::StatusOr<storage::RequestLog::Outcome> outcome =
      log->Run(conn, request.request_id(), method, DeterministicBytes(unkeyed),
               [&](storage::Connection& c) -> absl::StatusOr<std::string> {
                 if (absl::Status s = write(c); !s.ok()) return s;
                 return DeterministicBytes(*response);
               });
  if (!outcome.ok()) return outcome.status();
  *replayed = outcome->replayed;
  if (outcome->replayed && !response->ParseFromString(outcome->response)) {
    return absl::InternalError(
        absl::StrCat("the stored answer for request_id of this ", method,
                     " does not parse"));
  }
  return absl::OkStatus();
}

}  // namespace rowgate::service::calls

#endif  // ROWGATE_SERVICE_WORKER_CALL_H_
