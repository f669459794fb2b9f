// Allocates each call's request and response on a protobuf Arena of its
// own, for callback methods that build large responses (BatchGet: a Row map
// and Values per row). One arena per call replaces hundreds of malloc/free
// pairs with a few block allocations, freed at once when the call is done.
//
// Thread-safe (AllocateMessages creates independent holders). Must outlive
// the grpc::Server whose method it is set on.
//
// Example:
//   service.SetMessageAllocatorFor_BatchGet(&batch_get_allocator_);
#ifndef ROWGATE_SERVICE_ARENA_ALLOCATOR_H_
#define ROWGATE_SERVICE_ARENA_ALLOCATOR_H_

#include <grpcpp/support/message_allocator.h>

#include "google/protobuf/arena.h"

namespace rowgate::service {

template <typename RequestT, typename ResponseT>
class ArenaMessageAllocator
    : public grpc::MessageAllocator<RequestT, ResponseT> {
 public:
  grpc::MessageHolder<RequestT, ResponseT>* AllocateMessages() override {
    return new Holder();
  }

 private:
  // A small response fits the holder's inline block: no further allocation.
  static constexpr size_t kInitialBlock = 4096;

  class Holder : public grpc::MessageHolder<RequestT, ResponseT> {
   public:
    Holder() : arena_(Options(initial_block_)) {
      this->set_request(
          google::protobuf::Arena::CreateMessage<RequestT>(&arena_));
      this->set_response(
          google::protobuf::Arena::CreateMessage<ResponseT>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = kInitialBlock;
      return options;
    }
    // Declared before arena_, which uses it.
    alignas(8) char initial_block_[kInitialBlock];
    google::protobuf::Arena arena_;
  };
};

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_ARENA_ALLOCATOR_H_
