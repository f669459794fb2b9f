#include "service/metrics.h"

#include <httplib.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace rowgate::service {
namespace {

// gRPC's status codes are absl's, number for number.
std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// Records one call: created per RPC, reads the status being sent.
class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(std::shared_ptr<RpcMetrics> metrics, std::string method)
      : metrics_(std::move(metrics)), method_(std::move(method)) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(method_, methods->GetSendStatus().error_code(),
                       absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<RpcMetrics> metrics_;
  const std::string method_;
  const absl::Time start_ = absl::Now();
};

class MetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(std::shared_ptr<RpcMetrics> metrics)
      : metrics_(std::move(metrics)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_, info->method());
  }

 private:
  const std::shared_ptr<RpcMetrics> metrics_;
};

}  // namespace

std::string PromLabel(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

void RpcMetrics::Record(absl::string_view method, int code,
                        absl::Duration latency) {
  const double seconds = absl::ToDoubleSeconds(latency);
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  std::lock_guard<std::mutex> lock(mu_);
  PerMethod& m = methods_[std::string(method)];
  ++m.by_code[code];
  ++m.buckets[bucket];
  m.sum_seconds += seconds;
  ++m.count;
}

std::string RpcMetrics::Render() const {
  std::string out =
      "# HELP rowgate_rpc_requests_total gRPC calls finished, by method and "
      "status code.\n# TYPE rowgate_rpc_requests_total counter\n";
  std::string histogram =
      "# HELP rowgate_rpc_latency_seconds gRPC call latency, from the call's "
      "start to its status.\n# TYPE rowgate_rpc_latency_seconds histogram\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [method, m] : methods_) {
    const std::string label = PromLabel(method);
    for (const auto& [code, count] : m.by_code) {
      absl::StrAppend(&out, "rowgate_rpc_requests_total{method=\"", label,
                      "\",code=\"", CodeName(code), "\"} ", count, "\n");
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kBuckets.size(); ++i) {
      cumulative += m.buckets[i];
      const std::string le =
          i < kBuckets.size() ? absl::StrCat(kBuckets[i]) : "+Inf";
      absl::StrAppend(&histogram,
                      "rowgate_rpc_latency_seconds_bucket{method=\"", label,
                      "\",le=\"", le, "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&histogram, "rowgate_rpc_latency_seconds_sum{method=\"",
                    label, "\"} ", absl::StrFormat("%.6f", m.sum_seconds), "\n",
                    "rowgate_rpc_latency_seconds_count{method=\"", label,
                    "\"} ", m.count, "\n");
  }
  return out + histogram;
}

std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MetricsInterceptors(std::shared_ptr<RpcMetrics> metrics) {
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      creators;
  creators.push_back(
      std::make_unique<MetricsInterceptorFactory>(std::move(metrics)));
  return creators;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::function<std::string()> render) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_listen must be host:port, not \"", address, "\""));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->http_ = std::make_unique<httplib::Server>();
  server->http_->Get(
      "/metrics", [render = std::move(render)](const httplib::Request&,
                                               httplib::Response& response) {
        response.set_content(render(), "text/plain; version=0.0.4");
      });
  if (port == 0) {
    server->port_ = server->http_->bind_to_any_port(host);
  } else if (server->http_->bind_to_port(host, port)) {
    server->port_ = port;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", address));
  }
  httplib::Server* http = server->http_.get();
  server->thread_ = std::thread([http] { http->listen_after_bind(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace rowgate::service
