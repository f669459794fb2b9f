#include "service/batch_get_reactors.h"

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "service/call_context.h"
#include "service/data_service.h"
#include "service/proto_convert.h"
#include "service/raw_call.h"
#include "storage/mutex.h"

namespace rowgate::service {
namespace {

// What a unary BatchGet keeps until its rows are in.
struct BatchGetState {
  DataServiceImpl* service = nullptr;
  grpc::ServerContextBase* context = nullptr;
  PreparedLookup lookup;
  std::shared_ptr<loader::LoadTicket> ticket;
};
using BatchGetCall =
    RawUnaryCall<v1::BatchGetRequest, v1::BatchGetResponse, BatchGetState>;

// One unary BatchGet: waits on the loader, finishes from the worker that
// answered it, or at once when cancelled.
void StartBatchGet(DataServiceImpl& service, grpc::ServerContextBase* context,
                   BatchGetCall* call) {
  absl::StatusOr<PreparedLookup> lookup =
      service.PrepareLookup(call->request());
  if (!lookup.ok()) return call->Reply(lookup.status());
  BatchGetState& state = call->state();
  state.service = &service;
  state.context = context;
  state.lookup = std::move(*lookup);
  state.lookup.load.deadline = DeadlineOf(context);
  // gRPC delivers OnCancel and OnDone only after this handler returns, so
  // the ticket is set before OnCancel reads it, and `call` outlives this.
  state.ticket = service.StartLookup(
      std::move(state.lookup.load),
      [call](absl::StatusOr<loader::LoadResult> result) {
        if (!result.ok()) return call->Reply(result.status());
        BatchGetState& state = call->state();
        state.service->FillResponse(state.lookup, call->request(), *result,
                                    call->response());
        call->Reply(absl::OkStatus());
      });
  call->set_on_cancel([call] {
    BatchGetState& state = call->state();
    state.service->CancelLookup(state.ticket,
                                CancellationStatus(state.context));
  });
}

// StreamBatchGet: many requests in flight per stream, each answered with its
// tag as soon as its rows are in; a failed request answers with an error
// for its tag and the stream goes on. Reading pauses while
// max_inflight_per_stream requests are in flight or answered but not yet
// written (backpressure, also against a client that never reads).
//
// Served raw: a message that cannot be parsed has no tag to answer under, so
// it ends the stream with INVALID_ARGUMENT once the answers already in
// flight are written (reading stops there: later messages of a client whose
// encoding is broken cannot be trusted either).
class StreamBatchGetReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamBatchGetReactor(DataServiceImpl& service,
                        grpc::ServerContextBase* context)
      : service_(service), context_(context) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      storage::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    v1::StreamBatchGetRequest message;
    absl::Status parsed = ParseRaw(incoming_, &message);
    incoming_.Clear();
    if (!parsed.ok()) {
      storage::MutexLock lock(&mu_);
      reads_done_ = true;
      final_status_ = ToGrpcStatus(parsed);
      MaybeFinishLocked();
      return;
    }
    const uint64_t tag = message.tag();
    auto request = std::make_shared<v1::BatchGetRequest>(
        std::move(*message.mutable_request()));
    absl::StatusOr<PreparedLookup> lookup = service_.PrepareLookup(*request);
    if (!lookup.ok()) {
      v1::StreamBatchGetResponse answer;
      answer.set_tag(tag);
      answer.mutable_error()->set_code(
          static_cast<int>(lookup.status().code()));
      answer.mutable_error()->set_message(
          BoundedMessage(lookup.status().message()));
      grpc::ByteBuffer raw;
      SerializeRaw(answer, &raw);
      storage::MutexLock lock(&mu_);
      EnqueueLocked(&raw);
      ReadNextLocked();
      return;
    }
    uint64_t serial;
    {
      storage::MutexLock lock(&mu_);
      serial = next_serial_++;
      ++active_;
      inflight_[serial] = nullptr;
    }
    auto prepared = std::make_shared<PreparedLookup>(std::move(*lookup));
    prepared->load.deadline = DeadlineOf(context_);
    std::shared_ptr<loader::LoadTicket> ticket = service_.StartLookup(
        std::move(prepared->load),
        [this, serial, tag, request,
         prepared](absl::StatusOr<loader::LoadResult> result) {
          OnLoaded(serial, tag, *request, *prepared, std::move(result));
        });
    std::shared_ptr<loader::LoadTicket> missed;
    {
      storage::MutexLock lock(&mu_);
      auto it = inflight_.find(serial);
      if (it != inflight_.end()) {
        // OnCancel ran while this lookup was starting and found no ticket
        // to cancel: cancel it here, or its query would run for nobody.
        if (broken_) missed = ticket;
        it->second = std::move(ticket);
      }
      ReadNextLocked();
    }
    // gRPC calls OnDone only after this reaction returns: `this` is alive.
    if (missed != nullptr) {
      service_.CancelLookup(missed, CancellationStatus(context_));
    }
  }

  void OnWriteDone(bool ok) override {
    storage::MutexLock lock(&mu_);
    writes_.pop_front();
    if (!ok) {
      // The client is gone; OnCancel follows. Stop writing.
      broken_ = true;
      writes_.clear();
    }
    if (read_paused_) ReadNextLocked();  // an answer left: room for a request
    if (!writes_.empty()) {
      WriteFrontLocked();
    } else {
      writing_ = false;
      MaybeFinishLocked();
    }
  }

  void OnCancel() override {
    std::vector<std::shared_ptr<loader::LoadTicket>> tickets;
    {
      storage::MutexLock lock(&mu_);
      broken_ = true;
      for (auto& [serial, ticket] : inflight_) tickets.push_back(ticket);
    }
    const absl::Status status = CancellationStatus(context_);
    for (auto& ticket : tickets) service_.CancelLookup(ticket, status);
    storage::MutexLock lock(&mu_);
    MaybeFinishLocked();
  }

  void OnDone() override {
    bool last;
    {
      storage::MutexLock lock(&mu_);
      done_ = true;
      last = active_ == 0;
    }
    if (last) delete this;
  }

 private:
  void OnLoaded(uint64_t serial, uint64_t tag,
                const v1::BatchGetRequest& request,
                const PreparedLookup& lookup,
                absl::StatusOr<loader::LoadResult> result) {
    v1::StreamBatchGetResponse answer;
    answer.set_tag(tag);
    if (result.ok()) {
      service_.FillResponse(lookup, request, *result,
                            answer.mutable_response());
    } else {
      answer.mutable_error()->set_code(
          static_cast<int>(result.status().code()));
      answer.mutable_error()->set_message(
          BoundedMessage(result.status().message()));
    }
    grpc::ByteBuffer raw;
    SerializeRaw(answer, &raw);
    bool last;
    {
      storage::MutexLock lock(&mu_);
      inflight_.erase(serial);
      --active_;
      EnqueueLocked(&raw);
      if (read_paused_) ReadNextLocked();
      MaybeFinishLocked();
      // OnDone may have come already (a cancelled stream finishes without
      // waiting for answers being computed on workers); the last one out
      // deletes.
      last = done_ && active_ == 0;
    }
    if (last) delete this;
  }

  void ReadNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reads_done_ || broken_) return;
    // Answers waiting to be written count too: a client that sends but
    // never reads would otherwise pile them up here without bound.
    if (active_ + writes_.size() >=
        service_.options().max_inflight_per_stream) {
      read_paused_ = true;
      return;
    }
    read_paused_ = false;
    StartRead(&incoming_);
  }

  // Takes `answer`'s slices, leaving it empty. grpc::ByteBuffer has no move
  // constructor: std::move would copy it, sharing the slices with a copy the
  // caller then drops on its own thread, after gRPC may already have written
  // and released ours. gRPC's slice refcounts order that, but they live in
  // an uninstrumented libgrpc, so TSAN saw the last unref free bytes another
  // thread had read (a report from StreamsCancelledWhileAnswersArrive). One
  // owner per answer: no shared refcount, and one copy and unref less.
  void EnqueueLocked(grpc::ByteBuffer* answer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (broken_ || finished_) return;
    writes_.emplace_back().Swap(answer);
    if (!writing_) {
      writing_ = true;
      WriteFrontLocked();
    }
  }

  // With more answers queued behind this one, gRPC may hold it back and send
  // it together with them (fewer sendmsg calls); the last one flushes.
  void WriteFrontLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    grpc::WriteOptions options;
    if (writes_.size() > 1) options.set_buffer_hint();
    StartWrite(&writes_.front(), options);
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return;
    if (broken_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    } else if (reads_done_ && active_ == 0) {
      finished_ = true;
      Finish(final_status_);
    }
  }

  DataServiceImpl& service_;
  grpc::ServerContextBase* const context_;
  grpc::ByteBuffer incoming_;  // only touched by the read chain

  storage::Mutex mu_;
  std::deque<grpc::ByteBuffer> writes_ ABSL_GUARDED_BY(mu_);
  // OK, or why reading stopped early (an unparseable message).
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::shared_ptr<loader::LoadTicket>> inflight_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_serial_ ABSL_GUARDED_BY(mu_) = 0;
  size_t active_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerUnaryReactor* NewBatchGetReactor(DataServiceImpl& service,
                                             grpc::ServerContextBase* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) {
  auto* call = new BatchGetCall(request, response);
  if (call->parsed()) StartBatchGet(service, context, call);
  return call;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
NewStreamBatchGetReactor(DataServiceImpl& service,
                         grpc::ServerContextBase* context) {
  return new StreamBatchGetReactor(service, context);
}

}  // namespace rowgate::service
