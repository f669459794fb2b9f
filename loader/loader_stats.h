// Counters of the loader: how many lookups arrived, how many queries they
// cost, how large the batches were and how long keys waited to be sent.
//
// Lock-free (relaxed atomics); Record* may be called from any thread.
// Snapshot() is a consistent-enough copy for metrics and logs.
#ifndef ROWGATE_LOADER_LOADER_STATS_H_
#define ROWGATE_LOADER_LOADER_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace rowgate::loader {

// Histogram bucket i counts batches with 2^(i-1) < keys <= 2^i; bucket 0
// counts single-key batches; the last bucket takes everything larger.
inline constexpr int kKeysPerQueryBuckets = 17;

struct LoaderStatsSnapshot {
  uint64_t requests = 0;
  uint64_t keys = 0;
  uint64_t queries = 0;
  uint64_t keys_queried = 0;
  uint64_t rejected_overload = 0;
  uint64_t cancelled = 0;
  uint64_t failed_queries = 0;
  // Queries in flight whose every caller was cancelled: cancelled in
  // PostgreSQL (not counted as failed).
  uint64_t cancelled_queries = 0;
  std::array<uint64_t, kKeysPerQueryBuckets> keys_per_query{};
  uint64_t dispatch_wait_micros_total = 0;
  uint64_t dispatch_wait_micros_max = 0;

  // One line for logs: "requests=... keys=... queries=... keys/query=...".
  std::string ToString() const;
};

class LoaderStats {
 public:
  void RecordRequest(uint64_t keys);
  void RecordQuery(uint64_t distinct_keys, bool failed);
  void RecordDispatchWait(absl::Duration wait);
  void RecordRejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }
  void RecordCancelled() { cancelled_.fetch_add(1, std::memory_order_relaxed); }
  void RecordQueryCancelled() {
    cancelled_queries_.fetch_add(1, std::memory_order_relaxed);
  }
  LoaderStatsSnapshot Snapshot() const;

 private:
  std::atomic<uint64_t> requests_{0}, keys_{0}, queries_{0}, keys_queried_{0},
      rejected_{0}, cancelled_{0}, failed_{0}, cancelled_queries_{0},
      wait_total_{0}, wait_max_{0};
  std::array<std::atomic<uint64_t>, kKeysPerQueryBuckets> buckets_{};
};

}  // namespace rowgate::loader

#endif  // ROWGATE_LOADER_LOADER_STATS_H_
