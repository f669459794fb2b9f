// When a change feed (storage/change_feed.h) may call itself live: the
// bookkeeping of its probes of the server's WAL position against the
// position its stream has passed, apart from the I/O so the rules can be
// tested with made-up times.
//
// A probe (the server's pg_current_wal_lsn() at a time) is answered once the
// stream has passed its position with no transaction open. The lag is the
// age of the oldest unanswered probe (and the bytes between the newest
// probe and the stream). A live feed is interrupted when the lag exceeds a
// bound; an interrupted one goes live when a probe sent after the
// interruption has been answered and the lag is within half the bounds
// (so it does not flap at the bound).
//
// Not thread-safe: the feed's thread owns it.
#ifndef ROWGATE_STORAGE_FEED_LIVENESS_H_
#define ROWGATE_STORAGE_FEED_LIVENESS_H_

#include <cstdint>
#include <deque>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "storage/change_listener.h"

namespace rowgate::storage {

class FeedLiveness {
 public:
  struct Bounds {
    absl::Duration max_lag = absl::Seconds(5);
    uint64_t max_lag_bytes = uint64_t{256} << 20;
  };
  enum class Change { kNone, kInterrupted, kLive };

  explicit FeedLiveness(Bounds bounds) : bounds_(bounds) {}

  // A new stream starts at `start`: interrupted, no probes.
  void Restart(absl::Time now, Lsn start);
  // The stream broke or the feed stops: interrupted from `now`.
  // kInterrupted if it was live.
  Change Interrupt(absl::Time now);
  // The server was at `target` when probed at `issued`.
  void AddProbe(absl::Time issued, Lsn target);
  // The stream passed `lsn` with no transaction open.
  void Received(Lsn lsn);
  // Applies the rules above at `now`. After kInterrupted, why() says which
  // bound was passed.
  Change Evaluate(absl::Time now);

  bool live() const { return live_; }
  Lsn received() const { return received_; }
  // The oldest unanswered probe's age, and the bytes the stream is behind
  // the newest one (both zero when every probe is answered).
  absl::Duration lag(absl::Time now) const;
  uint64_t lag_bytes() const;
  const absl::Status& why() const { return why_; }

 private:
  struct Probe {
    absl::Time issued;
    Lsn target;
  };

  const Bounds bounds_;
  bool live_ = false;
  Lsn received_ = 0;
  absl::Time interrupted_at_ = absl::InfinitePast();
  bool answered_since_interrupt_ = false;
  std::deque<Probe> probes_;  // unanswered, oldest first
  absl::Status why_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_FEED_LIVENESS_H_
