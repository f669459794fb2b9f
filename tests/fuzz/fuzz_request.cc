// Fuzzes request validation in the service: DataServiceImpl::PrepareLookup
// (BatchGet and StreamBatchGet) and the Page, Insert, Update and Delete
// handlers' translation of a request, from fuzzed protobuf bytes, against an
// in-memory catalog with a column of every type (fuzz_support.h).
//
// The raw handlers are called directly with the fuzzed bytes (so parsing is
// fuzzed too), bound to a fake gRPC call; a request that passes validation
// goes on to a worker pool whose database does not exist, and answers
// UNAVAILABLE from there. So every
// answer is either UNAVAILABLE (valid; statement built, not sent) or a
// client error with a bounded message. Nothing may crash.
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "fuzz_support.h"
#include "service/data_service.h"
#include "storage/worker_pool.h"

namespace rowgate::fuzz {
namespace {

constexpr char kNoDatabase[] = "host=/nonexistent/rowgate-fuzz port=1";

struct Fixture {
  std::shared_ptr<const storage::Catalog> catalog = AllTypesCatalog();
  storage::WorkerPool pool{{.database_url = kNoDatabase, .size = 1}};
  service::DataServiceImpl service{service::DataServiceOptions{}, catalog,
                                   nullptr, &pool};
};

Fixture& F() {
  static Fixture* fixture = new Fixture();  // never destroyed: no exit race
  return *fixture;
}

void CheckAnswer(const grpc::Status& status) {
  if (status.ok() || status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return;
  }
  CheckError(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message()));
  Check(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
            status.error_code() == grpc::StatusCode::NOT_FOUND ||
            status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
            status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("unexpected code ", status.error_code(), ": ",
                     status.error_message()));
}

// gRPC's side of a unary call, for calling a raw handler directly: records
// the reactor's Finish (which may come from the pool's worker) and then
// runs its OnDone, as gRPC would.
class FakeUnaryCall final : public grpc::ServerCallbackUnary {
 public:
  explicit FakeUnaryCall(grpc::ServerUnaryReactor* reactor)
      : reactor_(reactor) {
    BindReactor(reactor);  // a Finish called already runs now
  }
  void Finish(grpc::Status s) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = std::move(s);
      finished_ = true;
      cv_.notify_all();
    }
    returned_.store(true, std::memory_order_release);
  }
  void SendInitialMetadata() override {}
  // Waits for Finish to have returned, then ends the call (OnDone).
  grpc::Status AwaitAndEnd() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return finished_; });
    }
    while (!returned_.load(std::memory_order_acquire)) {
      std::this_thread::yield();
    }
    reactor_->OnDone();
    return status_;
  }

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}

  grpc::ServerUnaryReactor* const reactor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::atomic<bool> returned_{false};
  grpc::Status status_;
};

// Calls a raw unary handler with the fuzzed bytes as its request, as gRPC
// hands them over, and checks the answer.
template <typename Handler>
void CallRaw(const std::string& bytes, Handler handler) {
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::CallbackServerContext context;
  grpc::ServerUnaryReactor* reactor =
      (F().service.*handler)(&context, &request, &response);
  FakeUnaryCall call(reactor);
  CheckAnswer(call.AwaitAndEnd());
}

void FuzzLookup(const std::string& bytes) {
  v1::BatchGetRequest request;
  if (!request.ParseFromString(bytes)) return;
  absl::StatusOr<service::PreparedLookup> lookup =
      F().service.PrepareLookup(request);
  if (!lookup.ok()) {
    CheckError(lookup.status());
    Check(lookup.status().code() == absl::StatusCode::kInvalidArgument,
          lookup.status().ToString());
    return;
  }
  const storage::Entity* entity = lookup->entity;
  Check(entity != nullptr && entity->name == request.entity(),
        "lookup of another entity");
  Check(lookup->load.keys.size() == static_cast<size_t>(request.keys_size()),
        "keys lost");
  Check(
      lookup->load.key_column >= 0 &&
          lookup->load.key_column < static_cast<int>(entity->columns.size()) &&
          storage::IsKeyType(entity->columns[lookup->load.key_column].type),
      "bad key column");
  for (int column : lookup->columns) {
    Check(column >= 0 && column < static_cast<int>(entity->columns.size()),
          "projection out of range");
  }
}

}  // namespace
}  // namespace rowgate::fuzz

// Fuzzed strings are often invalid UTF-8, which protobuf refuses (as the
// server does) and logs; the log lines would drown the fuzzer's output.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rowgate;
  using service::DataServiceImpl;
  if (size == 0) return 0;
  // The first byte picks the request type, the rest is its serialization.
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      fuzz::FuzzLookup(bytes);
      break;
    case 1:
      fuzz::CallRaw(bytes, &DataServiceImpl::Page);
      break;
    case 2:
      fuzz::CallRaw(bytes, &DataServiceImpl::Insert);
      break;
    case 3:
      fuzz::CallRaw(bytes, &DataServiceImpl::Update);
      break;
    default:
      fuzz::CallRaw(bytes, &DataServiceImpl::Delete);
  }
  return 0;
}
