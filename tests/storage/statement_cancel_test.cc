// Ending statements early from another thread (storage::StatementCancel),
// against a real PostgreSQL: a running statement is cancelled on the server
// and the connection stays usable; one asked after the cancel is not sent.
// And DeadlineWatchdog::Expedite, which it is built on.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "storage/connection.h"
#include "storage/deadline_watchdog.h"
#include "tests/common/test_database.h"

namespace rowgate::storage {
namespace {

using ::rowgate::testing::TestDatabaseUrl;

TEST(DeadlineWatchdogTest, ExpediteFiresAnArmedAlarmNowAndNothingElse) {
  DeadlineWatchdog watchdog;
  absl::Notification fired;
  const uint64_t far =
      watchdog.Arm(absl::InfiniteFuture(), [&fired] { fired.Notify(); });
  std::atomic<int> other{0};
  const uint64_t untouched =
      watchdog.Arm(absl::Now() + absl::Hours(1), [&other] { ++other; });
  watchdog.Expedite(far);
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(watchdog.Disarm(far)) << "it ran";
  EXPECT_TRUE(watchdog.Disarm(untouched));
  EXPECT_EQ(other.load(), 0);
  // Expediting what already ran or was disarmed does nothing.
  watchdog.Expedite(far);
  watchdog.Expedite(untouched);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(other.load(), 0);
}

TEST(StatementCancelTest, CancelEndsTheRunningStatementAndKeepsTheConnection) {
  DeadlineWatchdog watchdog;
  Connection conn(TestDatabaseUrl(), &watchdog);
  StatementCancel cancel;
  conn.set_statement_cancel(&cancel);
  const absl::Time started = absl::Now();
  std::thread canceller([&cancel] {
    absl::SleepFor(absl::Milliseconds(200));
    cancel.Cancel();
  });
  absl::StatusOr<QueryResult> slept = conn.Execute("SELECT pg_sleep(30)", {});
  canceller.join();
  EXPECT_EQ(slept.status().code(), absl::StatusCode::kCancelled)
      << slept.status();
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
  EXPECT_TRUE(cancel.cancelled());

  // Cancelled: the next statement is not sent.
  absl::StatusOr<QueryResult> after = conn.Execute("SELECT 1", {});
  EXPECT_EQ(after.status().code(), absl::StatusCode::kCancelled);

  // Without it, the same connection serves again.
  conn.set_statement_cancel(nullptr);
  absl::StatusOr<QueryResult> again = conn.Execute("SELECT 41 + 1", {});
  ASSERT_TRUE(again.ok()) << again.status();
}

// A cancelled transaction still ends with ROLLBACK on the same backend:
// refusing it would leave the connection mid-transaction, and callers
// close a connection whose ROLLBACK fails. Its COMMIT, refused, is not
// mistaken for the transaction's end.
TEST(StatementCancelTest, RollbackIsNeverRefused) {
  DeadlineWatchdog watchdog;
  Connection conn(TestDatabaseUrl(), &watchdog);
  StatementCancel cancel;
  conn.set_statement_cancel(&cancel);
  ASSERT_TRUE(conn.Execute("BEGIN", {}).ok());
  ASSERT_TRUE(
      conn.Execute("CREATE TEMP TABLE rolled_back_probe (x int)", {}).ok());
  const int backend = conn.backend_pid();
  cancel.Cancel();
  EXPECT_EQ(conn.Execute("SELECT 1", {}).status().code(),
            absl::StatusCode::kCancelled);
  // A COMMIT refused before it was sent leaves the transaction open, so a
  // schema change noticed now (which closes idle sessions to drop their
  // prepared statements) must not close this one before its ROLLBACK.
  EXPECT_EQ(conn.Execute("COMMIT", {}).status().code(),
            absl::StatusCode::kCancelled);
  InvalidatePreparedStatements();
  absl::StatusOr<QueryResult> rolled_back = conn.Execute("ROLLBACK", {});
  ASSERT_TRUE(rolled_back.ok()) << rolled_back.status();
  EXPECT_EQ(conn.backend_pid(), backend) << "ROLLBACK ran on a new session";

  conn.set_statement_cancel(nullptr);
  absl::StatusOr<QueryResult> after = conn.Execute(
      "SELECT to_regclass('pg_temp.rolled_back_probe') IS NULL", {});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->text(0, 0), "t") << "the transaction was not rolled back";
}

TEST(StatementCancelTest, UncancelledStatementsRunAsUsual) {
  DeadlineWatchdog watchdog;
  Connection conn(TestDatabaseUrl(), &watchdog);
  StatementCancel cancel;
  conn.set_statement_cancel(&cancel);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<QueryResult> result =
        conn.Execute("SELECT pg_sleep(0.01)", {});
    ASSERT_TRUE(result.ok()) << result.status();
  }
  EXPECT_FALSE(cancel.cancelled());
}

}  // namespace
}  // namespace rowgate::storage
