// Fuzzes request validation in the service: DataServiceImpl::PrepareLookup
// (BatchGet and StreamBatchGet) and the Page, Insert, Update and Delete
// handlers' translation of a request, from fuzzed protobuf bytes, against an
// in-memory catalog with a column of every type (fuzz_support.h).
//
// The handlers are called directly, with gRPC's test hook for the default
// reactor; a request that passes validation goes on to a worker pool whose
// database does not exist, and answers UNAVAILABLE from there. So every
// answer is either UNAVAILABLE (valid; statement built, not sent) or a
// client error with a bounded message. Nothing may crash.
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/test/default_reactor_test_peer.h>

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

// Calls a unary handler and waits for its Finish (which may come from the
// pool's worker).
template <typename Request, typename Response, typename Handler>
void CallUnary(const std::string& bytes, Handler handler) {
  Request request;
  if (!request.ParseFromString(bytes)) return;
  Response response;
  grpc::CallbackServerContext context;
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  grpc::Status status;
  grpc::testing::DefaultReactorTestPeer peer(&context, [&](grpc::Status s) {
    std::lock_guard<std::mutex> l(mu);
    status = std::move(s);
    finished = true;
    cv.notify_all();
  });
  (F().service.*handler)(&context, &request, &response);
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return finished; });
  }
  // gRPC's test reactor still touches the context right after calling us:
  // it is done with it once it reports the status set.
  while (!peer.test_status_set()) std::this_thread::yield();
  CheckAnswer(status);
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
      fuzz::CallUnary<v1::PageRequest, v1::PageResponse>(
          bytes, &DataServiceImpl::Page);
      break;
    case 2:
      fuzz::CallUnary<v1::InsertRequest, v1::InsertResponse>(
          bytes, &DataServiceImpl::Insert);
      break;
    case 3:
      fuzz::CallUnary<v1::UpdateRequest, v1::UpdateResponse>(
          bytes, &DataServiceImpl::Update);
      break;
    default:
      fuzz::CallUnary<v1::DeleteRequest, v1::DeleteResponse>(
          bytes, &DataServiceImpl::Delete);
  }
  return 0;
}
