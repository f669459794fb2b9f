// gRPC server reflection (grpc.reflection.v1 and grpc.reflection.v1alpha),
// answered from protobuf's generated descriptor pool, so that grpcurl,
// buf curl, Postman and the like can list and call rowgate's services without
// a copy of the .proto files. Both versions share one implementation; their
// messages are identical field for field. Debian's libgrpc++_reflection only
// offers v1alpha, which newer clients no longer ask for first.
//
// The server owns nothing here: the caller owns this object, which must
// outlive the grpc::Server it is registered with. Thread-safe: handlers run
// on gRPC's callback threads and never block, and SetServiceNames may be
// called at any time (a stream sees the names current when it asks).
//
// Only files whose generated .pb.cc is linked into the binary can be
// described; a service whose descriptors live elsewhere (gRPC's built-in
// health service is one) can be listed but not described.
//
// Example:
//   ReflectionServices reflection;
//   reflection.SetServiceNames({"rowgate.v1.DataService",
//                               "grpc.reflection.v1.ServerReflection",
//                               "grpc.reflection.v1alpha.ServerReflection"});
//   reflection.RegisterWith(builder);  // before builder.BuildAndStart()
#ifndef ROWGATE_SERVICE_REFLECTION_SERVICE_H_
#define ROWGATE_SERVICE_REFLECTION_SERVICE_H_

#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_callback.h>

#include <memory>
#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.pb.h"
#include "grpc/reflection/v1alpha/reflection.pb.h"

namespace rowgate::service {

// Serves grpc.reflection.v1 and grpc.reflection.v1alpha from the generated
// descriptor pool.
class ReflectionServices {
 public:
  ReflectionServices();
  ~ReflectionServices();
  ReflectionServices(const ReflectionServices&) = delete;
  ReflectionServices& operator=(const ReflectionServices&) = delete;

  // Registers both services, on the callback API, on `builder`. This object
  // must outlive the server. Call once. Does not block.
  void RegisterWith(grpc::ServerBuilder& builder);

  // Or: a new ServerReflectionInfo stream's reactor, for a server that serves
  // the two services on the completion-queue API (service/cq_server.h)
  // instead of registering them here. It starts reading at once and deletes
  // itself in OnDone. Thread-safe.
  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  NewV1Stream();
  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  NewV1AlphaStream();

  // Sets the fully qualified names answered to list_services, in this order
  // (e.g. "rowgate.v1.DataService"). gRPC gives a service no public way to
  // learn what else is registered on its server, so whoever builds the server
  // says; include the two reflection services themselves. Empty until called.
  // Takes a short lock; never waits on I/O.
  void SetServiceNames(std::vector<std::string> names);

 private:
  class Impl;  // The name list and both services, defined in the .cc.
  std::unique_ptr<Impl> impl_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_REFLECTION_SERVICE_H_
