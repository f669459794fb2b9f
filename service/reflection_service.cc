#include "service/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "storage/mutex.h"

namespace rowgate::service {
namespace {

namespace pb = ::google::protobuf;

// The answer to list_services. Written by whoever builds the server, read by
// every reflection stream.
class ServiceNames {
 public:
  void Set(std::vector<std::string> names) {
    storage::WriterLock lock(&mu_);
    names_ = std::move(names);
  }
  std::vector<std::string> Get() const {
    storage::ReaderLock lock(&mu_);
    return names_;
  }

 private:
  mutable storage::SharedMutex mu_;
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
};

// Appends `file` and then, depth first, every file it imports, each once per
// response: a client builds its own pool from the answer and needs the whole
// closure. `file` comes first so clients that only read the first entry see
// the one they asked for.
template <typename ResponseT>
void AddFileAndDependencies(const pb::FileDescriptor& file,
                            std::unordered_set<std::string>& seen,
                            ResponseT& response) {
  if (!seen.insert(file.name()).second) return;
  pb::FileDescriptorProto proto;
  file.CopyTo(&proto);
  proto.SerializeToString(
      response.mutable_file_descriptor_response()->add_file_descriptor_proto());
  for (int i = 0; i < file.dependency_count(); ++i) {
    AddFileAndDependencies(*file.dependency(i), seen, response);
  }
}

template <typename ResponseT>
void AnswerWithFile(const pb::FileDescriptor& file, ResponseT& response) {
  std::unordered_set<std::string> seen;
  AddFileAndDependencies(file, seen, response);
}

template <typename ResponseT>
grpc::Status FileByFilename(const pb::DescriptorPool& pool,
                            const std::string& filename, ResponseT& response) {
  if (filename.empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "file_by_filename is empty"};
  }
  const pb::FileDescriptor* file = pool.FindFileByName(filename);
  if (file == nullptr) {
    return {grpc::StatusCode::NOT_FOUND,
            absl::StrCat("file \"", filename, "\" not found")};
  }
  AnswerWithFile(*file, response);
  return grpc::Status::OK;
}

// Any fully qualified symbol: service, method, message (nested too), field,
// oneof, enum, enum value, extension or package.
template <typename ResponseT>
grpc::Status FileContainingSymbol(const pb::DescriptorPool& pool,
                                  const std::string& symbol,
                                  ResponseT& response) {
  if (symbol.empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "file_containing_symbol is empty"};
  }
  const pb::FileDescriptor* file = pool.FindFileContainingSymbol(symbol);
  if (file == nullptr) {
    return {grpc::StatusCode::NOT_FOUND,
            absl::StrCat("symbol \"", symbol, "\" not found")};
  }
  AnswerWithFile(*file, response);
  return grpc::Status::OK;
}

template <typename ExtensionRequestT, typename ResponseT>
grpc::Status FileContainingExtension(const pb::DescriptorPool& pool,
                                     const ExtensionRequestT& request,
                                     ResponseT& response) {
  const pb::Descriptor* type =
      pool.FindMessageTypeByName(request.containing_type());
  if (type == nullptr) {
    return {grpc::StatusCode::NOT_FOUND,
            absl::StrCat("message type \"", request.containing_type(),
                         "\" not found")};
  }
  const pb::FieldDescriptor* extension =
      pool.FindExtensionByNumber(type, request.extension_number());
  if (extension == nullptr) {
    return {grpc::StatusCode::NOT_FOUND,
            absl::StrCat("message type \"", request.containing_type(),
                         "\" has no extension numbered ",
                         request.extension_number())};
  }
  AnswerWithFile(*extension->file(), response);
  return grpc::Status::OK;
}

template <typename ResponseT>
grpc::Status AllExtensionNumbersOfType(const pb::DescriptorPool& pool,
                                       const std::string& type_name,
                                       ResponseT& response) {
  const pb::Descriptor* type = pool.FindMessageTypeByName(type_name);
  if (type == nullptr) {
    return {grpc::StatusCode::NOT_FOUND,
            absl::StrCat("message type \"", type_name, "\" not found")};
  }
  std::vector<const pb::FieldDescriptor*> extensions;
  pool.FindAllExtensions(type, &extensions);
  auto* numbers = response.mutable_all_extension_numbers_response();
  numbers->set_base_type_name(type->full_name());
  for (const pb::FieldDescriptor* extension : extensions) {
    numbers->add_extension_number(extension->number());
  }
  return grpc::Status::OK;
}

// Fills `response` for one request. A request that cannot be answered gets
// an error_response; the stream itself goes on.
template <typename RequestT, typename ResponseT>
void Answer(const ServiceNames& names, const RequestT& request,
            ResponseT& response) {
  const pb::DescriptorPool& pool = *pb::DescriptorPool::generated_pool();
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  grpc::Status status;
  switch (request.message_request_case()) {
    case RequestT::kFileByFilename:
      status = FileByFilename(pool, request.file_by_filename(), response);
      break;
    case RequestT::kFileContainingSymbol:
      status = FileContainingSymbol(pool, request.file_containing_symbol(),
                                    response);
      break;
    case RequestT::kFileContainingExtension:
      status = FileContainingExtension(
          pool, request.file_containing_extension(), response);
      break;
    case RequestT::kAllExtensionNumbersOfType:
      status = AllExtensionNumbersOfType(
          pool, request.all_extension_numbers_of_type(), response);
      break;
    case RequestT::kListServices:
      for (std::string& name : names.Get()) {
        response.mutable_list_services_response()->add_service()->set_name(
            std::move(name));
      }
      break;
    case RequestT::MESSAGE_REQUEST_NOT_SET:
      // Also what a request kind newer than this file looks like.
      status = {grpc::StatusCode::INVALID_ARGUMENT,
                "the request sets none of the kinds this server knows"};
      break;
  }
  if (!status.ok()) {
    auto* error = response.mutable_error_response();
    error->set_error_code(status.error_code());
    error->set_error_message(status.error_message());
  }
}

// One reflection service; instantiated for v1 and v1alpha, whose messages
// are identical field for field.
template <typename ServiceT, typename RequestT, typename ResponseT>
class ReflectionService final : public ServiceT::CallbackService {
 public:
  explicit ReflectionService(const ServiceNames& names) : names_(names) {}

  // Reads a request, writes its answer, repeats until the client closes its
  // side. One operation is outstanding at a time, so Finish runs exactly once:
  // from whichever read or write first fails.
  class Stream final : public grpc::ServerBidiReactor<RequestT, ResponseT> {
   public:
    explicit Stream(const ServiceNames& names) : names_(names) {
      this->StartRead(&request_);
    }

    void OnReadDone(bool ok) override {
      if (!ok) {  // The client closed its side, or the call was cancelled.
        this->Finish(grpc::Status::OK);
        return;
      }
      response_.Clear();
      Answer(names_, request_, response_);
      this->StartWrite(&response_);
    }

    void OnWriteDone(bool ok) override {
      if (!ok) {  // The call is gone; this status reaches no one.
        this->Finish(grpc::Status::CANCELLED);
        return;
      }
      this->StartRead(&request_);
    }

    void OnDone() override { delete this; }

   private:
    const ServiceNames& names_;
    RequestT request_;
    ResponseT response_;
  };

 private:
  grpc::ServerBidiReactor<RequestT, ResponseT>* ServerReflectionInfo(
      grpc::CallbackServerContext* /*context*/) override {
    return new Stream(names_);
  }

  const ServiceNames& names_;
};

namespace v1 = ::grpc::reflection::v1;
namespace v1alpha = ::grpc::reflection::v1alpha;

using V1Service =
    ReflectionService<v1::ServerReflection, v1::ServerReflectionRequest,
                      v1::ServerReflectionResponse>;
using V1AlphaService = ReflectionService<v1alpha::ServerReflection,
                                         v1alpha::ServerReflectionRequest,
                                         v1alpha::ServerReflectionResponse>;

}  // namespace

class ReflectionServices::Impl {
 public:
  ServiceNames names;  // Declared first: the services hold a reference.
  V1Service v1{names};
  V1AlphaService v1alpha{names};
};

ReflectionServices::ReflectionServices() : impl_(std::make_unique<Impl>()) {}

ReflectionServices::~ReflectionServices() = default;

void ReflectionServices::RegisterWith(grpc::ServerBuilder& builder) {
  builder.RegisterService(&impl_->v1);
  builder.RegisterService(&impl_->v1alpha);
}

grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                        grpc::reflection::v1::ServerReflectionResponse>*
ReflectionServices::NewV1Stream() {
  return new V1Service::Stream(impl_->names);
}

grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                        grpc::reflection::v1alpha::ServerReflectionResponse>*
ReflectionServices::NewV1AlphaStream() {
  return new V1AlphaService::Stream(impl_->names);
}

void ReflectionServices::SetServiceNames(std::vector<std::string> names) {
  impl_->names.Set(std::move(names));
}

}  // namespace rowgate::service
