#include "loader/loader_stats.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rowgate::loader {

void LoaderStats::RecordRequest(uint64_t keys) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  keys_.fetch_add(keys, std::memory_order_relaxed);
}

void LoaderStats::RecordQuery(uint64_t distinct_keys, bool failed) {
  queries_.fetch_add(1, std::memory_order_relaxed);
  keys_queried_.fetch_add(distinct_keys, std::memory_order_relaxed);
  if (failed) failed_.fetch_add(1, std::memory_order_relaxed);
  int bucket = 0;
  while (bucket < kKeysPerQueryBuckets - 1 &&
         (uint64_t{1} << bucket) < distinct_keys) {
    ++bucket;
  }
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
}

void LoaderStats::RecordDispatchWait(absl::Duration wait) {
  const uint64_t micros = static_cast<uint64_t>(
      std::max<int64_t>(0, absl::ToInt64Microseconds(wait)));
  wait_total_.fetch_add(micros, std::memory_order_relaxed);
  uint64_t seen = wait_max_.load(std::memory_order_relaxed);
  while (micros > seen && !wait_max_.compare_exchange_weak(
                              seen, micros, std::memory_order_relaxed)) {
  }
}

LoaderStatsSnapshot LoaderStats::Snapshot() const {
  LoaderStatsSnapshot s;
  s.requests = requests_.load(std::memory_order_relaxed);
  s.keys = keys_.load(std::memory_order_relaxed);
  s.queries = queries_.load(std::memory_order_relaxed);
  s.keys_queried = keys_queried_.load(std::memory_order_relaxed);
  s.rejected_overload = rejected_.load(std::memory_order_relaxed);
  s.cancelled = cancelled_.load(std::memory_order_relaxed);
  s.failed_queries = failed_.load(std::memory_order_relaxed);
  s.cancelled_queries = cancelled_queries_.load(std::memory_order_relaxed);
  for (int i = 0; i < kKeysPerQueryBuckets; ++i) {
    s.keys_per_query[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  s.dispatch_wait_micros_total = wait_total_.load(std::memory_order_relaxed);
  s.dispatch_wait_micros_max = wait_max_.load(std::memory_order_relaxed);
  return s;
}

std::string LoaderStatsSnapshot::ToString() const {
  return absl::StrFormat(
      "requests=%d keys=%d queries=%d keys_queried=%d keys_per_query=%.2f "
      "rejected_overload=%d cancelled=%d failed_queries=%d "
      "cancelled_queries=%d dispatch_wait_avg_us=%.1f "
      "dispatch_wait_max_us=%d",
      requests, keys, queries, keys_queried,
      queries ? static_cast<double>(keys_queried) / queries : 0.0,
      rejected_overload, cancelled, failed_queries, cancelled_queries,
      requests ? static_cast<double>(dispatch_wait_micros_total) / requests
               : 0.0,
      dispatch_wait_micros_max);
}

}  // namespace rowgate::loader
