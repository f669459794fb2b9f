// rowgate_load: a closed-loop gRPC load generator for rowgate's BatchGet and
// StreamBatchGet, used by bench/run.sh and the bench_smoke test.
//
// Each of --threads threads owns one channel (with distinct channel args, so
// no two share a subchannel or a TCP connection) and one completion queue,
// and keeps its share of --concurrency calls in flight: a call that completes
// is replaced at once. The first --warmup_s seconds are not counted, the next
// --duration_s seconds are measured, then the calls in flight drain. Latency
// is kept in a log-bucketed histogram (HDR-like, about 1.6% resolution).
//
// A sample of answers (--check_fraction) is checked: one result per key, in
// order, the key echoed, found, and the row's `id` equal to the key asked.
//
// Example:
//   rowgate_load --target=127.0.0.1:50051 --mode=stream --streams=8 \
//       --inflight_per_stream=16 --key_min=1 --key_max=1000000 --json
//
// Exit code: 0 for a clean run; 1 if a call failed, a checked answer was
// wrong or no call completed; 2 for bad flags or an unreachable target.
// Speed never changes the exit code.

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/random/random.h"
#include "absl/random/zipf_distribution.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rowgate/v1/rowgate.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "rowgate's address");
ABSL_FLAG(std::string, mode, "unary",
          "unary (BatchGet) or stream "
          "(StreamBatchGet with tags)");
ABSL_FLAG(int, threads, 2,
          "Client threads; each owns one channel and one completion queue");
ABSL_FLAG(int, concurrency, 16,
          "Calls in flight (unary); for stream mode without --streams, the "
          "total requests in flight over min(8, concurrency) streams");
ABSL_FLAG(int, streams, 0,
          "Streams (stream mode); 0: derived from "
          "--concurrency");
ABSL_FLAG(int, inflight_per_stream, 16,
          "Requests in flight on each stream (with --streams)");
ABSL_FLAG(int, keys_per_call, 1, "Keys in each BatchGet request");
ABSL_FLAG(std::string, row_format, "map",
          "map (each row a map column -> value, the default) or list "
          "(ROW_FORMAT_LIST: values in the order of the response's columns)");
ABSL_FLAG(std::string, distribution, "uniform", "uniform or zipfian");
ABSL_FLAG(double, zipf_q, 1.1,
          "Zipfian exponent (> 1); key_min is the hottest key");
ABSL_FLAG(int64_t, key_min, 1, "Smallest key asked");
ABSL_FLAG(int64_t, key_max, 1000000, "Largest key asked");
ABSL_FLAG(double, duration_s, 10, "Measured seconds");
ABSL_FLAG(double, warmup_s, 2, "Seconds of load before measuring");
ABSL_FLAG(std::string, entity, "users", "Entity (table) to read");
ABSL_FLAG(double, check_fraction, 0.01, "Fraction of answers checked (0..1)");
ABSL_FLAG(bool, expect_found, true,
          "Every key in [key_min, key_max] exists (checked answers must say "
          "found)");
ABSL_FLAG(double, call_timeout_s, 10, "Deadline of each unary call");
ABSL_FLAG(int, server_pid, 0,
          "If set, the server's CPU seconds over the measured window and its "
          "peak RSS are read from /proc and reported");
ABSL_FLAG(std::string, label, "", "Free text echoed in the report");
ABSL_FLAG(bool, prime, false,
          "Before the warm-up, ask every key from --key_min to --key_max "
          "once, 1000 per call (fills a row cache: all keys hot)");
ABSL_FLAG(bool, json, false,
          "Print one JSON object on stdout (the human report goes to stderr)");

namespace rowgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using rowgate::v1::BatchGetRequest;
using rowgate::v1::BatchGetResponse;
using rowgate::v1::DataService;
using rowgate::v1::StreamBatchGetRequest;
using rowgate::v1::StreamBatchGetResponse;

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

struct Options {
  std::string target;
  bool stream = false;
  int threads = 1;
  int concurrency = 1;
  int streams = 0;
  int inflight_per_stream = 0;
  int keys_per_call = 1;
  bool row_list = false;
  bool zipfian = false;
  double zipf_q = 1.1;
  int64_t key_min = 1;
  int64_t key_max = 1;
  double duration_s = 0;
  double warmup_s = 0;
  std::string entity;
  double check_fraction = 0;
  bool expect_found = true;
  double call_timeout_s = 10;
};

// Latency histogram with log-spaced buckets: values below 128 ns are exact;
// above, each power of two is split into 64 buckets (relative error < 1.6%).
// Not thread-safe: each worker keeps its own and they are merged at the end.
class Histogram {
 public:
  Histogram() : buckets_(kBuckets, 0) {}

  void Record(uint64_t ns) {
    ++buckets_[Index(ns)];
    ++count_;
    max_ = std::max(max_, ns);
  }

  void Merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }

  // The value at quantile q (0..1) in nanoseconds: the middle of the bucket
  // holding the ceil(q * count)-th smallest value, never above the maximum.
  double Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * count_));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        double mid = LowerBound(i) + (Width(i) - 1) / 2.0;
        return std::min(mid, static_cast<double>(max_));
      }
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr size_t kBuckets = 64 * 60;

  static size_t Index(uint64_t v) {
    if (v < 128) return static_cast<size_t>(v);
    int msb = 63 - __builtin_clzll(v);
    int e = msb - 6;  // v >> e is in [64, 128)
    return static_cast<size_t>(e) * 64 + static_cast<size_t>(v >> e);
  }
  static uint64_t LowerBound(size_t i) {
    if (i < 128) return i;
    size_t e = i / 64 - 1;
    return static_cast<uint64_t>(i - e * 64) << e;
  }
  static uint64_t Width(size_t i) {
    if (i < 128) return 1;
    return uint64_t{1} << (i / 64 - 1);
  }

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

// What one worker saw. Calls and keys are counted in the measured window;
// the *_all counters, errors and checks cover the whole run.
struct Stats {
  Histogram latency;
  uint64_t calls = 0;
  uint64_t keys = 0;
  uint64_t calls_all = 0;
  uint64_t keys_all = 0;
  uint64_t checked = 0;
  uint64_t check_failures = 0;
  std::map<int, uint64_t> errors;  // grpc::StatusCode -> count
  std::string first_error;
  std::string first_check_failure;

  void Merge(const Stats& o) {
    latency.Merge(o.latency);
    calls += o.calls;
    keys += o.keys;
    calls_all += o.calls_all;
    keys_all += o.keys_all;
    checked += o.checked;
    check_failures += o.check_failures;
    for (const auto& [code, n] : o.errors) errors[code] += n;
    if (first_error.empty()) first_error = o.first_error;
    if (first_check_failure.empty()) {
      first_check_failure = o.first_check_failure;
    }
  }

  void AddError(int code, const std::string& message) {
    ++errors[code];
    if (first_error.empty()) first_error = message;
  }
};

const char* CodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  if (code >= 0 && code < 17) return kNames[code];
  return "UNKNOWN_CODE";
}

// Checks one answer against the keys asked; returns "" when it is right,
// else what was wrong (the first wrong result).
std::string CheckAnswer(const std::vector<int64_t>& keys,
                        const BatchGetResponse& resp, bool expect_found) {
  if (resp.results_size() != static_cast<int>(keys.size())) {
    return absl::StrCat("asked ", keys.size(), " keys, got ",
                        resp.results_size(), " results");
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& r = resp.results(static_cast<int>(i));
    if (r.key().kind_case() != rowgate::v1::Value::kInt64Value ||
        r.key().int64_value() != keys[i]) {
      return absl::StrCat("result ", i, " echoes key ",
                          r.key().ShortDebugString(), ", asked ", keys[i]);
    }
    if (!r.found()) {
      if (expect_found) return absl::StrCat("key ", keys[i], " not found");
      if (r.rows_size() != 0) {
        return absl::StrCat("key ", keys[i], " not found but has rows");
      }
      continue;
    }
    const rowgate::v1::Value* id = nullptr;
    if (r.value_rows_size() > 0) {  // ROW_FORMAT_LIST
      if (r.value_rows_size() != 1 || r.rows_size() != 0) {
        return absl::StrCat("key ", keys[i], " found with ",
                            r.value_rows_size(), " list rows");
      }
      for (int c = 0; c < resp.columns_size(); ++c) {
        if (resp.columns(c) == "id" && c < r.value_rows(0).values_size()) {
          id = &r.value_rows(0).values(c);
        }
      }
    } else {
      if (r.rows_size() != 1) {
        return absl::StrCat("key ", keys[i], " found with ", r.rows_size(),
                            " rows");
      }
      const auto& fields = r.rows(0).fields();
      auto it = fields.find("id");
      if (it != fields.end()) id = &it->second;
    }
    if (id == nullptr) {
      return absl::StrCat("key ", keys[i], ": row has no id");
    }
    if (id->kind_case() != rowgate::v1::Value::kInt64Value ||
        id->int64_value() != keys[i]) {
      return absl::StrCat("key ", keys[i], ": row's id is ",
                          id->ShortDebugString());
    }
  }
  return "";
}

// Draws keys: uniform or zipfian over [key_min, key_max].
class KeySource {
 public:
  explicit KeySource(const Options& opts)
      : opts_(opts),
        uniform_(opts.key_min, opts.key_max),
        zipf_(std::max<int64_t>(1, opts.key_max - opts.key_min), opts.zipf_q,
              1.0) {}

  int64_t Next() {
    if (!opts_.zipfian) return uniform_(gen_);
    return std::min(opts_.key_min + zipf_(gen_), opts_.key_max);
  }
  void Fill(std::vector<int64_t>* keys, BatchGetRequest* req) {
    keys->resize(opts_.keys_per_call);
    req->set_entity(opts_.entity);
    if (opts_.row_list) req->set_row_format(rowgate::v1::ROW_FORMAT_LIST);
    for (int i = 0; i < opts_.keys_per_call; ++i) {
      (*keys)[i] = Next();
      req->add_keys()->set_int64_value((*keys)[i]);
    }
  }
  bool Sample() {
    return opts_.check_fraction > 0 &&
           absl::Bernoulli(gen_, opts_.check_fraction);
  }

 private:
  const Options& opts_;
  absl::InsecureBitGen gen_;
  absl::uniform_int_distribution<int64_t> uniform_;
  absl::zipf_distribution<int64_t> zipf_;
};

// One thread, one channel, one completion queue, and its share of the calls.
// Everything but `phase` is touched by the worker's thread only.
class Worker {
 public:
  // `calls` unary calls in flight, or `streams` streams with `inflight`
  // requests each. `phase` must outlive the worker.
  Worker(int id, const Options& opts, const std::atomic<int>* phase, int calls,
         int streams, int inflight)
      : opts_(opts),
        phase_(phase),
        calls_(calls),
        streams_(streams),
        inflight_(inflight),
        keys_(opts) {
    grpc::ChannelArguments args;
    // A distinct argument gives each worker a subchannel (and TCP
    // connection) of its own instead of one shared by every channel.
    args.SetInt("rowgate.bench.channel_id", id);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(
        opts.target, grpc::InsecureChannelCredentials(), args);
    stub_ = DataService::NewStub(channel_);
  }

  bool Connect(absl::Duration timeout) {
    return channel_->WaitForConnected(
        absl::ToChronoTime(absl::Now() + timeout));
  }
  void Start() {
    thread_ = std::thread([this] {
      if (opts_.stream) {
        RunStreams();
      } else {
        RunUnary();
      }
    });
  }
  void Join() { thread_.join(); }
  const Stats& stats() const { return stats_; }

 private:
  struct UnaryCall {
    grpc::ClientContext ctx;
    BatchGetRequest req;
    BatchGetResponse resp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<BatchGetResponse>> rpc;
    std::vector<int64_t> keys;
    Clock::time_point start;
  };

  struct Stream;
  enum class OpKind { kStart, kWrite, kRead, kWritesDone, kFinish };
  struct Op {
    Stream* stream;
    OpKind kind;
  };
  struct Pending {
    Clock::time_point start;
    std::vector<int64_t> keys;
  };
  struct Stream {
    Op start_op{this, OpKind::kStart};
    Op write_op{this, OpKind::kWrite};
    Op read_op{this, OpKind::kRead};
    Op writes_done_op{this, OpKind::kWritesDone};
    Op finish_op{this, OpKind::kFinish};
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReaderWriter<StreamBatchGetRequest,
                                                  StreamBatchGetResponse>>
        rw;
    StreamBatchGetResponse incoming;
    StreamBatchGetRequest outgoing;  // alive until its write completes
    std::deque<StreamBatchGetRequest> to_write;
    std::unordered_map<uint64_t, Pending> pending;
    uint64_t next_tag = 1;
    bool writing = false;
    bool writes_done = false;
    bool broken = false;
    bool finished = false;
    grpc::Status status;
  };

  int phase() const { return phase_->load(std::memory_order_acquire); }

  // Counts a successful answer (latency only inside the measured window).
  void CountAnswer(Clock::time_point start, const std::vector<int64_t>& keys,
                   const BatchGetResponse& resp, bool sampled) {
    auto now = Clock::now();
    ++stats_.calls_all;
    stats_.keys_all += keys.size();
    if (phase() == kMeasure) {
      ++stats_.calls;
      stats_.keys += keys.size();
      stats_.latency.Record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - start)
              .count()));
    }
    if (sampled) {
      ++stats_.checked;
      std::string wrong = CheckAnswer(keys, resp, opts_.expect_found);
      if (!wrong.empty()) {
        ++stats_.check_failures;
        if (stats_.first_check_failure.empty()) {
          stats_.first_check_failure = wrong;
        }
      }
    }
  }

  // ------------------------------------------------------------- unary

  void StartUnary() {
    auto* call = new UnaryCall;
    keys_.Fill(&call->keys, &call->req);
    call->ctx.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(opts_.call_timeout_s)));
    call->start = Clock::now();
    call->rpc = stub_->PrepareAsyncBatchGet(&call->ctx, call->req, &cq_);
    call->rpc->StartCall();
    call->rpc->Finish(&call->resp, &call->status, call);
    ++outstanding_;
  }

  void RunUnary() {
    for (int i = 0; i < calls_; ++i) StartUnary();
    void* tag;
    bool ok;
    while (outstanding_ > 0 && cq_.Next(&tag, &ok)) {
      std::unique_ptr<UnaryCall> call(static_cast<UnaryCall*>(tag));
      --outstanding_;
      if (call->status.ok()) {
        CountAnswer(call->start, call->keys, call->resp, keys_.Sample());
      } else {
        stats_.AddError(call->status.error_code(),
                        call->status.error_message());
      }
      if (phase() != kStop) StartUnary();
    }
    Drain();
  }

  // ------------------------------------------------------------ stream

  void RunStreams() {
    std::vector<std::unique_ptr<Stream>> streams;
    for (int i = 0; i < streams_; ++i) {
      auto s = std::make_unique<Stream>();
      s->ctx.set_deadline(absl::ToChronoTime(
          absl::Now() + absl::Seconds(opts_.warmup_s + opts_.duration_s +
                                      opts_.call_timeout_s + 30)));
      s->rw = stub_->PrepareAsyncStreamBatchGet(&s->ctx, &cq_);
      s->rw->StartCall(&s->start_op);
      streams.push_back(std::move(s));
    }
    int running = streams_;
    void* tag;
    bool ok;
    while (running > 0 && cq_.Next(&tag, &ok)) {
      Op* op = static_cast<Op*>(tag);
      Stream* s = op->stream;
      switch (op->kind) {
        case OpKind::kStart:
          if (!ok) {
            s->broken = true;
            s->rw->Finish(&s->status, &s->finish_op);
            break;
          }
          s->rw->Read(&s->incoming, &s->read_op);
          for (int i = 0; i < inflight_; ++i) Enqueue(s);
          break;
        case OpKind::kWrite:
          s->writing = false;
          if (!ok) {
            // The stream is broken; the pending read reports it.
            s->broken = true;
            s->to_write.clear();
            break;
          }
          PumpWrites(s);
          break;
        case OpKind::kWritesDone:
          s->writing = false;
          break;
        case OpKind::kRead:
          if (!ok) {
            s->rw->Finish(&s->status, &s->finish_op);
            break;
          }
          OnStreamAnswer(s);
          s->rw->Read(&s->incoming, &s->read_op);
          break;
        case OpKind::kFinish:
          s->finished = true;
          --running;
          if (!s->status.ok()) {
            stats_.AddError(
                s->status.error_code(),
                absl::StrCat("stream: ", s->status.error_message()));
          }
          if (!s->pending.empty()) {
            // Requests the stream never answered.
            int code = s->status.ok() ? grpc::StatusCode::DATA_LOSS
                                      : s->status.error_code();
            stats_.errors[code] += s->pending.size();
            if (stats_.first_error.empty()) {
              stats_.first_error = absl::StrCat(
                  "stream ended with ", s->pending.size(), " unanswered");
            }
          }
          break;
      }
    }
    Drain();
  }

  void Enqueue(Stream* s) {
    uint64_t tag = s->next_tag++;
    StreamBatchGetRequest req;
    req.set_tag(tag);
    Pending& p = s->pending[tag];
    keys_.Fill(&p.keys, req.mutable_request());
    p.start = Clock::now();
    s->to_write.push_back(std::move(req));
    PumpWrites(s);
  }

  // Starts the next write if none is in progress; once stopping and nothing
  // is left in flight, half-closes the stream.
  void PumpWrites(Stream* s) {
    if (s->writing || s->broken) return;
    if (!s->to_write.empty()) {
      s->outgoing = std::move(s->to_write.front());
      s->to_write.pop_front();
      s->writing = true;
      s->rw->Write(s->outgoing, &s->write_op);
      return;
    }
    if (phase() == kStop && s->pending.empty() && !s->writes_done) {
      s->writes_done = true;
      s->writing = true;
      s->rw->WritesDone(&s->writes_done_op);
    }
  }

  void OnStreamAnswer(Stream* s) {
    auto it = s->pending.find(s->incoming.tag());
    if (it == s->pending.end()) {
      ++stats_.check_failures;
      if (stats_.first_check_failure.empty()) {
        stats_.first_check_failure =
            absl::StrCat("answer with unknown tag ", s->incoming.tag());
      }
      return;
    }
    Pending p = std::move(it->second);
    s->pending.erase(it);
    switch (s->incoming.outcome_case()) {
      case StreamBatchGetResponse::kResponse:
        CountAnswer(p.start, p.keys, s->incoming.response(), keys_.Sample());
        break;
      case StreamBatchGetResponse::kError:
        stats_.AddError(s->incoming.error().code(),
                        s->incoming.error().message());
        break;
      default:
        stats_.AddError(grpc::StatusCode::INTERNAL,
                        "stream answer with neither response nor error");
        break;
    }
    if (phase() != kStop) {
      Enqueue(s);
    } else {
      PumpWrites(s);
    }
  }

  void Drain() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  const Options& opts_;
  const std::atomic<int>* phase_;
  const int calls_;
  const int streams_;
  const int inflight_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<DataService::Stub> stub_;
  grpc::CompletionQueue cq_;
  KeySource keys_;
  int outstanding_ = 0;
  Stats stats_;
  std::thread thread_;
};

// utime + stime of `pid` in seconds, or -1 if it cannot be read.
double ProcessCpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return -1;
  // Fields after the command name, which is in parentheses.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> f =
      absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
  // f[0] is field 3 (state); utime and stime are fields 14 and 15.
  if (f.size() < 13) return -1;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime)) {
    return -1;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A "VmHWM"-style line of /proc/<pid>/status in kB, or -1.
int64_t ProcessStatusKb(int pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kb = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb;
  }
  return -1;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Asks every key of [key_min, key_max] once, in calls of 1000 keys, on
// one channel; false (after saying why) on an error.
bool Prime(const Options& o) {
  auto channel =
      grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  auto stub = DataService::NewStub(channel);
  // A cache fills only once its change feed is live.
  auto admin = rowgate::v1::AdminService::NewStub(channel);
  for (int i = 0;; ++i) {
    rowgate::v1::CacheStats stats;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    grpc::Status status =
        admin->GetCacheStats(&ctx, rowgate::v1::GetCacheStatsRequest(), &stats);
    if (status.ok() && (stats.live() || !stats.enabled())) break;
    if (i == 300) {
      std::fprintf(stderr, "rowgate_load: the cache is not live after 30 s\n");
      return false;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  const absl::Time start = absl::Now();
  for (int64_t first = o.key_min; first <= o.key_max; first += 1000) {
    BatchGetRequest req;
    req.set_entity(o.entity);
    for (int64_t k = first; k <= std::min(o.key_max, first + 999); ++k) {
      req.add_keys()->set_int64_value(k);
    }
    rowgate::v1::BatchGetResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    grpc::Status status = stub->BatchGet(&ctx, req, &resp);
    if (!status.ok()) {
      std::fprintf(stderr, "rowgate_load: priming failed at key %lld: %s\n",
                   static_cast<long long>(first),
                   status.error_message().c_str());
      return false;
    }
  }
  std::fprintf(stderr, "rowgate_load: primed keys %lld..%lld in %.1f s\n",
               static_cast<long long>(o.key_min),
               static_cast<long long>(o.key_max),
               absl::ToDoubleSeconds(absl::Now() - start));
  return true;
}

int Main() {
  Options o;
  o.target = absl::GetFlag(FLAGS_target);
  std::string mode = absl::GetFlag(FLAGS_mode);
  std::string dist = absl::GetFlag(FLAGS_distribution);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.streams = absl::GetFlag(FLAGS_streams);
  o.inflight_per_stream = absl::GetFlag(FLAGS_inflight_per_stream);
  o.keys_per_call = absl::GetFlag(FLAGS_keys_per_call);
  const std::string row_format = absl::GetFlag(FLAGS_row_format);
  o.row_list = row_format == "list";
  o.zipf_q = absl::GetFlag(FLAGS_zipf_q);
  o.key_min = absl::GetFlag(FLAGS_key_min);
  o.key_max = absl::GetFlag(FLAGS_key_max);
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  o.entity = absl::GetFlag(FLAGS_entity);
  o.check_fraction = absl::GetFlag(FLAGS_check_fraction);
  o.expect_found = absl::GetFlag(FLAGS_expect_found);
  o.call_timeout_s = absl::GetFlag(FLAGS_call_timeout_s);
  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  const bool json = absl::GetFlag(FLAGS_json);

  std::string bad;
  if (mode != "unary" && mode != "stream") bad = "--mode must be unary|stream";
  if (dist != "uniform" && dist != "zipfian") {
    bad = "--distribution must be uniform|zipfian";
  }
  if (o.threads < 1) bad = "--threads must be >= 1";
  if (o.concurrency < 1) bad = "--concurrency must be >= 1";
  if (o.keys_per_call < 1) bad = "--keys_per_call must be >= 1";
  if (row_format != "map" && row_format != "list") {
    bad = "--row_format must be map or list";
  }
  if (o.key_max < o.key_min) bad = "--key_max must be >= --key_min";
  if (o.duration_s <= 0 || o.warmup_s < 0) bad = "bad --duration_s/--warmup_s";
  if (dist == "zipfian" && o.zipf_q <= 1) bad = "--zipf_q must be > 1";
  if (o.check_fraction < 0 || o.check_fraction > 1) {
    bad = "--check_fraction must be in [0, 1]";
  }
  if (!bad.empty()) {
    std::fprintf(stderr, "rowgate_load: %s\n", bad.c_str());
    return 2;
  }
  o.stream = mode == "stream";
  o.zipfian = dist == "zipfian";
  if (absl::GetFlag(FLAGS_prime)) {
    if (!Prime(o)) return 1;
  }

  // Split the load over the threads: unary calls, or whole streams.
  int units = o.concurrency;
  if (o.stream) {
    if (o.streams <= 0) {
      o.streams = std::min(8, o.concurrency);
      o.inflight_per_stream = std::max(1, o.concurrency / o.streams);
    }
    if (o.inflight_per_stream < 1) {
      std::fprintf(stderr,
                   "rowgate_load: --inflight_per_stream must be >= 1\n");
      return 2;
    }
    units = o.streams;
    o.concurrency = o.streams * o.inflight_per_stream;
  }
  o.threads = std::min(o.threads, units);

  std::atomic<int> phase{kWarmup};
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.threads; ++i) {
    int share = units / o.threads + (i < units % o.threads ? 1 : 0);
    workers.push_back(
        std::make_unique<Worker>(i, o, &phase, o.stream ? 0 : share,
                                 o.stream ? share : 0, o.inflight_per_stream));
  }
  for (auto& w : workers) {
    if (!w->Connect(absl::Seconds(10))) {
      std::fprintf(stderr, "rowgate_load: cannot connect to %s\n",
                   o.target.c_str());
      return 2;
    }
  }

  for (auto& w : workers) w->Start();
  absl::SleepFor(absl::Seconds(o.warmup_s));
  double cpu0 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  double self0 = ProcessCpuSeconds(getpid());
  auto t0 = Clock::now();
  phase.store(kMeasure, std::memory_order_release);
  absl::SleepFor(absl::Seconds(o.duration_s));
  phase.store(kStop, std::memory_order_release);
  auto t1 = Clock::now();
  double cpu1 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  double self1 = ProcessCpuSeconds(getpid());
  for (auto& w : workers) w->Join();
  int64_t hwm_kb = server_pid > 0 ? ProcessStatusKb(server_pid, "VmHWM") : -1;
  int64_t rss_kb = server_pid > 0 ? ProcessStatusKb(server_pid, "VmRSS") : -1;

  Stats total;
  for (auto& w : workers) total.Merge(w->stats());
  const double elapsed = std::chrono::duration<double>(t1 - t0).count();
  const double calls_s = total.calls / elapsed;
  const double keys_s = total.keys / elapsed;
  const double p50 = total.latency.Quantile(0.50) / 1e3;
  const double p90 = total.latency.Quantile(0.90) / 1e3;
  const double p99 = total.latency.Quantile(0.99) / 1e3;
  const double max_us = total.latency.max() / 1e3;
  uint64_t errors = 0;
  std::string by_code;
  for (const auto& [code, n] : total.errors) {
    errors += n;
    absl::StrAppend(&by_code, by_code.empty() ? "" : ";", CodeName(code), "=",
                    n);
  }
  const double server_cpu = (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
  const double client_cpu = (self0 >= 0 && self1 >= 0) ? self1 - self0 : -1;

  FILE* human = json ? stderr : stdout;
  std::string label = absl::GetFlag(FLAGS_label);
  std::fprintf(human,
               "rowgate_load %s%s%s c=%d (%d threads, %d key%s/call, %s "
               "[%lld, %lld]) %.1f s\n",
               label.c_str(), label.empty() ? "" : ": ", mode.c_str(),
               o.concurrency, o.threads, o.keys_per_call,
               o.keys_per_call == 1 ? "" : "s", dist.c_str(),
               static_cast<long long>(o.key_min),
               static_cast<long long>(o.key_max), elapsed);
  if (o.stream) {
    std::fprintf(human, "  %d streams x %d in flight\n", o.streams,
                 o.inflight_per_stream);
  }
  std::fprintf(human, "  calls/s %.1f  keys/s %.1f  (%llu calls measured)\n",
               calls_s, keys_s, static_cast<unsigned long long>(total.calls));
  std::fprintf(human, "  latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
               p50, p90, p99, max_us);
  std::fprintf(
      human, "  errors: %s%s%s\n", errors == 0 ? "none" : by_code.c_str(),
      total.first_error.empty() ? "" : "  first: ", total.first_error.c_str());
  std::fprintf(human, "  checked %llu answers, %llu wrong%s%s\n",
               static_cast<unsigned long long>(total.checked),
               static_cast<unsigned long long>(total.check_failures),
               total.first_check_failure.empty() ? "" : "  first: ",
               total.first_check_failure.c_str());
  std::fprintf(human, "  generator: %.2f CPU s in window\n", client_cpu);
  if (server_cpu >= 0) {
    std::fprintf(human,
                 "  server: %.2f CPU s in window (%.1f s per million keys), "
                 "peak RSS %lld kB\n",
                 server_cpu,
                 total.keys > 0 ? server_cpu * 1e6 / total.keys : 0.0,
                 static_cast<long long>(hwm_kb));
  }

  if (json) {
    std::printf(
        "{\"label\":%s,\"mode\":\"%s\",\"distribution\":\"%s\","
        "\"threads\":%d,\"concurrency\":%d,\"streams\":%d,"
        "\"inflight_per_stream\":%d,\"keys_per_call\":%d,"
        "\"elapsed_s\":%.3f,\"calls\":%llu,\"keys\":%llu,"
        "\"calls_all\":%llu,\"keys_all\":%llu,"
        "\"calls_per_s\":%.1f,\"keys_per_s\":%.1f,"
        "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
        "\"errors\":%llu,\"errors_by_code\":%s,\"first_error\":%s,"
        "\"checked\":%llu,\"check_failures\":%llu,"
        "\"first_check_failure\":%s,"
        "\"server_cpu_s\":%.3f,\"server_vmhwm_kb\":%lld,"
        "\"server_vmrss_kb\":%lld,\"client_cpu_s\":%.3f}\n",
        JsonString(label).c_str(), mode.c_str(), dist.c_str(), o.threads,
        o.concurrency, o.stream ? o.streams : 0,
        o.stream ? o.inflight_per_stream : 0, o.keys_per_call, elapsed,
        static_cast<unsigned long long>(total.calls),
        static_cast<unsigned long long>(total.keys),
        static_cast<unsigned long long>(total.calls_all),
        static_cast<unsigned long long>(total.keys_all), calls_s, keys_s, p50,
        p90, p99, max_us, static_cast<unsigned long long>(errors),
        JsonString(by_code).c_str(), JsonString(total.first_error).c_str(),
        static_cast<unsigned long long>(total.checked),
        static_cast<unsigned long long>(total.check_failures),
        JsonString(total.first_check_failure).c_str(), server_cpu,
        static_cast<long long>(hwm_kb), static_cast<long long>(rss_kb),
        client_cpu);
    std::fflush(stdout);
  }

  if (errors > 0 || total.check_failures > 0 || total.calls_all == 0) return 1;
  return 0;
}

}  // namespace
}  // namespace rowgate::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return rowgate::bench::Main();
}
