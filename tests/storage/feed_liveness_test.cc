// FeedLiveness with made-up times: when a change feed goes live, when a lag
// interrupts it, and that it comes back only after catching up.
#include "storage/feed_liveness.h"

#include <gtest/gtest.h>

namespace rowgate::storage {
namespace {

using Change = FeedLiveness::Change;

absl::Time T(int ms) { return absl::UnixEpoch() + absl::Milliseconds(ms); }

FeedLiveness Make() {
  return FeedLiveness({.max_lag = absl::Seconds(5), .max_lag_bytes = 1000});
}

TEST(FeedLivenessTest, StartsInterruptedAndGoesLiveOnceAProbeIsAnswered) {
  FeedLiveness l = Make();
  l.Restart(T(0), 100);
  EXPECT_EQ(l.Evaluate(T(1)), Change::kNone);  // no probe answered yet
  l.AddProbe(T(10), 500);
  EXPECT_EQ(l.Evaluate(T(20)), Change::kNone);
  EXPECT_EQ(l.lag(T(20)), absl::Milliseconds(10));
  EXPECT_EQ(l.lag_bytes(), 400u);
  l.Received(499);
  EXPECT_EQ(l.Evaluate(T(30)), Change::kNone);
  l.Received(500);
  EXPECT_EQ(l.Evaluate(T(40)), Change::kLive);
  EXPECT_TRUE(l.live());
  EXPECT_EQ(l.received(), 500u);
  EXPECT_EQ(l.lag(T(40)), absl::ZeroDuration());
  EXPECT_EQ(l.Evaluate(T(50)), Change::kNone);  // OnLive once
}

TEST(FeedLivenessTest, ReceivedNeverMovesBack) {
  FeedLiveness l = Make();
  l.Restart(T(0), 100);
  l.Received(50);
  EXPECT_EQ(l.received(), 100u);
}

TEST(FeedLivenessTest, LagBeyondTheBoundInterruptsAndCatchingUpRestores) {
  FeedLiveness l = Make();
  l.Restart(T(0), 0);
  l.AddProbe(T(0), 10);
  l.Received(10);
  ASSERT_EQ(l.Evaluate(T(1)), Change::kLive);
  l.AddProbe(T(1000), 20);
  EXPECT_EQ(l.Evaluate(T(6000)), Change::kNone);  // exactly at the bound
  EXPECT_EQ(l.Evaluate(T(6001)), Change::kInterrupted);
  EXPECT_EQ(l.why().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(l.live());
  // The old probe answered is not enough: it was sent before the
  // interruption.
  l.Received(20);
  EXPECT_EQ(l.Evaluate(T(6002)), Change::kNone);
  // A newer one, answered while another waits 3 s (over half the bound).
  l.AddProbe(T(7000), 30);
  l.AddProbe(T(8000), 40);
  l.Received(30);
  EXPECT_EQ(l.Evaluate(T(11000)), Change::kNone);
  l.Received(40);
  EXPECT_EQ(l.Evaluate(T(11001)), Change::kLive);
}

TEST(FeedLivenessTest, BytesBehindBeyondTheBoundInterrupt) {
  FeedLiveness l = Make();
  l.Restart(T(0), 0);
  l.AddProbe(T(0), 10);
  l.Received(10);
  ASSERT_EQ(l.Evaluate(T(1)), Change::kLive);
  l.AddProbe(T(2), 1011);
  EXPECT_EQ(l.Evaluate(T(3)), Change::kInterrupted);
  EXPECT_EQ(l.lag_bytes(), 1001u);
  l.AddProbe(T(4), 1200);
  l.Received(1011);
  // 189 bytes behind the newest probe: within half the bound.
  EXPECT_EQ(l.Evaluate(T(5)), Change::kNone);  // no probe since answered
  l.Received(1200);
  EXPECT_EQ(l.Evaluate(T(6)), Change::kLive);
}

TEST(FeedLivenessTest, InterruptAndRestartStartOver) {
  FeedLiveness l = Make();
  l.Restart(T(0), 0);
  EXPECT_EQ(l.Interrupt(T(1)), Change::kNone);  // not live: nothing to say
  l.AddProbe(T(2), 5);
  l.Received(5);
  ASSERT_EQ(l.Evaluate(T(3)), Change::kLive);
  EXPECT_EQ(l.Interrupt(T(4)), Change::kInterrupted);
  l.Restart(T(5), 0);
  l.AddProbe(T(4), 1);  // sent before the new stream: does not count
  l.Received(1);
  EXPECT_EQ(l.Evaluate(T(6)), Change::kNone);
  l.AddProbe(T(7), 2);
  l.Received(2);
  EXPECT_EQ(l.Evaluate(T(8)), Change::kLive);
}

}  // namespace
}  // namespace rowgate::storage
