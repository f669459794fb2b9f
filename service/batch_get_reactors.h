// The BatchGet and StreamBatchGet call handlers (reactors), whichever API
// serves them: gRPC's callback API hands them to the library directly; the
// completion-queue server (service/cq_server.h) drives the same reactors
// from its own threads through call adapters.
//
// A unary BatchGet validates and translates the request on the thread that
// received it, hands its keys to the loader and is finished from the thread
// that answers it (a database worker, or inline when the answer needs no
// database). StreamBatchGet answers each message under its tag as soon as its
// rows are in (details at the reactor in the .cc).
//
// The reactors delete themselves in OnDone; `service` must outlive them.
#ifndef ROWGATE_SERVICE_BATCH_GET_REACTORS_H_
#define ROWGATE_SERVICE_BATCH_GET_REACTORS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

namespace rowgate::service {

class DataServiceImpl;

// A unary BatchGet of the raw `request` (parsed here: INVALID_ARGUMENT when
// it does not parse), answered into `response`. Does not block.
grpc::ServerUnaryReactor* NewBatchGetReactor(DataServiceImpl& service,
                                             grpc::ServerContextBase* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response);

// A StreamBatchGet; it starts reading at once. Does not block.
grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
NewStreamBatchGetReactor(DataServiceImpl& service,
                         grpc::ServerContextBase* context);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_BATCH_GET_REACTORS_H_
