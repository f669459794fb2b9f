// Prometheus metrics: per-RPC counts by status code and latency histograms
// (recorded by a gRPC server interceptor), plus whatever the server adds when
// rendering (loader, pool, database errors, health), served as text on an
// HTTP endpoint (cpp-httplib) at /metrics.
//
// RpcMetrics is thread-safe. MetricsHttpServer serves from a thread of its
// own; its destructor stops it. The interceptor factory and the RpcMetrics it
// feeds must outlive the grpc::Server.
//
// Example:
//   auto metrics = std::make_shared<RpcMetrics>();
//   builder.experimental().SetInterceptorCreators(
//       MetricsInterceptors(metrics));
//   auto http = MetricsHttpServer::Start("127.0.0.1:9464",
//                                        [&] { return metrics->Render(); });
#ifndef ROWGATE_SERVICE_METRICS_H_
#define ROWGATE_SERVICE_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}

namespace rowgate::service {

class RpcMetrics {
 public:
  // Latency bucket upper bounds, in seconds.
  static constexpr std::array<double, 14> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};

  // `method` is gRPC's full name, e.g. "/rowgate.v1.DataService/BatchGet".
  void Record(absl::string_view method, int code, absl::Duration latency);

  // rowgate_rpc_requests_total and rowgate_rpc_latency_seconds, in the
  // Prometheus text format.
  std::string Render() const;

 private:
  struct PerMethod {
    std::map<int, uint64_t> by_code;
    std::array<uint64_t, kBuckets.size() + 1> buckets{};  // last: +Inf
    double sum_seconds = 0;
    uint64_t count = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, PerMethod> methods_;  // guarded by mu_
};

// The interceptor creators to give grpc::ServerBuilder.
std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MetricsInterceptors(std::shared_ptr<RpcMetrics> metrics);

class MetricsHttpServer {
 public:
  // Serves GET /metrics on `address` ("host:port"; port 0 picks one) with
  // the text `render` returns. Blocks until listening.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

// Escapes a Prometheus label value.
std::string PromLabel(absl::string_view value);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_METRICS_H_
