#include "storage/feed_liveness.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace rowgate::storage {

void FeedLiveness::Restart(absl::Time now, Lsn start) {
  live_ = false;
  received_ = start;
  interrupted_at_ = now;
  answered_since_interrupt_ = false;
  probes_.clear();
}

FeedLiveness::Change FeedLiveness::Interrupt(absl::Time now) {
  interrupted_at_ = now;
  answered_since_interrupt_ = false;
  if (!live_) return Change::kNone;
  live_ = false;
  return Change::kInterrupted;
}

void FeedLiveness::AddProbe(absl::Time issued, Lsn target) {
  probes_.push_back({issued, target});
}

void FeedLiveness::Received(Lsn lsn) { received_ = std::max(received_, lsn); }

absl::Duration FeedLiveness::lag(absl::Time now) const {
  return probes_.empty()
             ? absl::ZeroDuration()
             : std::max(absl::ZeroDuration(), now - probes_.front().issued);
}

uint64_t FeedLiveness::lag_bytes() const {
  if (probes_.empty() || probes_.back().target <= received_) return 0;
  return probes_.back().target - received_;
}

FeedLiveness::Change FeedLiveness::Evaluate(absl::Time now) {
  while (!probes_.empty() && probes_.front().target <= received_) {
    if (probes_.front().issued >= interrupted_at_) {
      answered_since_interrupt_ = true;
    }
    probes_.pop_front();
  }
  const absl::Duration behind = lag(now);
  const uint64_t behind_bytes = lag_bytes();
  if (live_) {
    if (behind <= bounds_.max_lag && behind_bytes <= bounds_.max_lag_bytes) {
      return Change::kNone;
    }
    why_ = absl::UnavailableError(absl::StrFormat(
        "the change stream lags behind PostgreSQL (%s, %d bytes; bounds %s, "
        "%d bytes)",
        absl::FormatDuration(behind), behind_bytes,
        absl::FormatDuration(bounds_.max_lag), bounds_.max_lag_bytes));
    return Interrupt(now);
  }
  if (answered_since_interrupt_ && behind <= bounds_.max_lag / 2 &&
      behind_bytes <= bounds_.max_lag_bytes / 2) {
    live_ = true;
    return Change::kLive;
  }
  return Change::kNone;
}

}  // namespace rowgate::storage
