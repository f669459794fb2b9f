// Serving gRPC methods raw (grpc::ByteBuffer in and out) and parsing the
// messages here, so a request that cannot be parsed gets a status that says
// so.
//
// gRPC 1.51's callback handlers answer a request they cannot deserialize
// with UNIMPLEMENTED and an empty message, and end a stream with OK,
// silently dropping that message and every later one. Served raw (the
// generated WithRawCallbackMethod_<Method> templates), rowgate answers
// INVALID_ARGUMENT "request is not a valid rowgate.v1.XRequest message".
//
// RawUnaryCall is one unary call: the reactor gRPC is given, owning a
// protobuf arena (with an inline first block) that holds the parsed request
// and the response, so a call still costs a few block allocations rather
// than one malloc per message (the BatchGet CPU win of a per-call arena), and
// `State`, whatever the handler must keep until it replies. Reply() finishes
// the call exactly once, from any thread; it deletes itself in OnDone.
//
// Example:
//   grpc::ServerUnaryReactor* Impl::Insert(grpc::CallbackServerContext* ctx,
//       const grpc::ByteBuffer* in, grpc::ByteBuffer* out) {
//     auto* call = new RawUnaryCall<v1::InsertRequest,
//                                   v1::InsertResponse>(in, out);
//     if (call->parsed()) HandleInsert(ctx, call);  // ends in call->Reply()
//     return call;
//   }
#ifndef ROWGATE_SERVICE_RAW_CALL_H_
#define ROWGATE_SERVICE_RAW_CALL_H_

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <functional>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "service/proto_convert.h"

namespace rowgate::service {

// Parses `raw` into `message`: INVALID_ARGUMENT naming the message type when
// the bytes are not one (truncated, wrong wire types, invalid UTF-8 in a
// string field). Does not block.
template <typename Message>
absl::Status ParseRaw(const grpc::ByteBuffer& raw, Message* message) {
  // Deserialize consumes its buffer; the copy shares the slices.
  grpc::ByteBuffer copy(raw);
  if (grpc::SerializationTraits<Message>::Deserialize(&copy, message).ok()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("request is not a valid ",
                   Message::descriptor()->full_name(), " message"));
}

// Serializes `message` into `raw` (replacing its contents), straight into
// gRPC slices.
template <typename Message>
void SerializeRaw(const Message& message, grpc::ByteBuffer* raw) {
  bool own_buffer = false;
  grpc::SerializationTraits<Message>::Serialize(message, raw, &own_buffer);
}

template <typename Request, typename Response, typename State = std::monostate>
class RawUnaryCall final : public grpc::ServerUnaryReactor {
 public:
  // Parses `raw_request`; when that fails the call is already finished with
  // INVALID_ARGUMENT and parsed() is false. `raw_response` is gRPC's and
  // must live until OnDone (it does).
  RawUnaryCall(const grpc::ByteBuffer* raw_request,
               grpc::ByteBuffer* raw_response)
      : arena_(ArenaOptionsFor(initial_block_)),
        request_(google::protobuf::Arena::CreateMessage<Request>(&arena_)),
        response_(google::protobuf::Arena::CreateMessage<Response>(&arena_)),
        raw_response_(raw_response) {
    absl::Status parsed = ParseRaw(*raw_request, request_);
    parsed_ = parsed.ok();
    if (!parsed_) Finish(ToGrpcStatus(parsed));
  }

  bool parsed() const { return parsed_; }
  const Request& request() const { return *request_; }
  Response* response() { return response_; }
  State& state() { return state_; }
  google::protobuf::Arena* arena() { return &arena_; }

  // Runs in OnCancel. Set it before the handler returns: gRPC calls
  // OnCancel only after that.
  void set_on_cancel(std::function<void()> on_cancel) {
    on_cancel_ = std::move(on_cancel);
  }

  // Finishes the call: with the serialized response when `status` is OK.
  // Call exactly once; `this` may be gone as soon as it returns.
  void Reply(const absl::Status& status) {
    if (status.ok()) SerializeRaw(*response_, raw_response_);
    Finish(ToGrpcStatus(status));
  }

  void OnCancel() override {
    if (on_cancel_) on_cancel_();
  }
  void OnDone() override { delete this; }

 private:
  // A small response fits the inline block: no further allocation.
  static constexpr size_t kInitialBlock = 4096;
  static google::protobuf::ArenaOptions ArenaOptionsFor(char* block) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block;
    options.initial_block_size = kInitialBlock;
    return options;
  }

  // Declared before arena_, which uses it.
  alignas(8) char initial_block_[kInitialBlock];
  google::protobuf::Arena arena_;
  Request* const request_;
  Response* const response_;
  grpc::ByteBuffer* const raw_response_;
  bool parsed_ = false;
  State state_;
  std::function<void()> on_cancel_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_RAW_CALL_H_
