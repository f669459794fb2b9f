// A database that stops answering costs bounded time: start-up against a
// host that accepts and never replies fails within the connect timeout;
// once a running rowgate's database goes silent, calls answer UNAVAILABLE or
// DEADLINE_EXCEEDED within the statement timeout plus a reconnect, health
// turns NOT_SERVING, and SIGTERM with workers stuck connecting still exits
// cleanly within the shutdown grace. The bounds asserted are correctness
// bounds with a generous margin, not performance figures.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "storage/connection.h"
#include "storage/deadline_watchdog.h"
#include "storage/request_log.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"
#include "tests/faults/fault_net.h"

namespace rowgate::faults {
namespace {

using e2e::Client;
using e2e::RowgateProcess;
using grpc::health::v1::HealthCheckResponse;
using ::testing::AnyOf;
using ::testing::HasSubstr;
namespace v1 = ::rowgate::v1;

constexpr int kConnectTimeoutS = 2;
constexpr int kStatementTimeoutMs = 2000;
constexpr int kGraceS = 2;
// Slack for process start, scheduling and a loaded CI machine.
constexpr absl::Duration kMargin = absl::Seconds(5);

HealthCheckResponse::ServingStatus Health(RowgateProcess& server) {
  auto stub = grpc::health::v1::Health::NewStub(server.NewChannel());
  grpc::health::v1::HealthCheckRequest request;
  HealthCheckResponse response;
  auto context = e2e::NewContext(absl::Seconds(2));
  if (!stub->Check(context.get(), request, &response).ok()) {
    return HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

// Start-up reads the catalog first; against a host that accepts the TCP
// connection and never answers, one attempt gives up after the connect
// timeout and rowgate exits with a message that says so.
TEST(TimeoutsTest, StartupAgainstASilentDatabaseFailsWithinTheConnectTimeout) {
  SilentListener silent;
  const std::string url = TcpUrl(silent.port(), testing::TestDatabaseUrl());
  const absl::Time start = absl::Now();
  auto server = RowgateProcess::Spawn(
      {"--database_url=" + url,
       absl::StrCat("--db_connect_timeout_s=", kConnectTimeoutS),
       "--startup_timeout_s=0"});
  ASSERT_NE(server, nullptr);
  const auto exit =
      server->WaitForExit(absl::Seconds(kConnectTimeoutS) + kMargin);
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(exit.has_value())
      << "rowgate still starting after " << took << "; its output:\n"
      << server->OutputTail();
  std::cout << "[ timeouts ] start-up against a silent database failed after "
            << took << std::endl;
  EXPECT_GE(silent.accepted(), 1);
  EXPECT_TRUE(WIFEXITED(exit->wait_status) &&
              WEXITSTATUS(exit->wait_status) != 0)
      << server->OutputTail();
  EXPECT_THAT(server->OutputTail(),
              HasSubstr("did not answer within the connect timeout (2s)"));
}

// A statement blocked in PostgreSQL (a lock held elsewhere) for a call
// with a long deadline of its own ends at --statement_timeout_ms, as
// DEADLINE_EXCEEDED saying why, and the connection serves the next call.
TEST(TimeoutsTest, StatementTimeoutEndsABlockedStatement) {
  auto server =
      RowgateProcess::Start({"--pool_size=1", "--statement_timeout_ms=300"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  pqxx::connection admin(testing::TestDatabaseUrl());
  auto lock = std::make_unique<pqxx::work>(admin);
  lock->exec("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
  v1::BatchGetResponse response;
  auto context = e2e::NewContext(absl::Seconds(30));
  const absl::Time start = absl::Now();
  const grpc::Status blocked = client.data()->BatchGet(
      context.get(), e2e::BatchGetRequest("users", {e2e::Int(1)}), &response);
  std::cout << "[ timeouts ] a lookup blocked on a lock ended after "
            << absl::Now() - start << " (--statement_timeout_ms=300)"
            << std::endl;
  const grpc::Status other = client.BatchGet(
      e2e::BatchGetRequest("grouptypes", {e2e::Int(11)}), &response);
  lock->commit();
  EXPECT_EQ(blocked.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(blocked.error_message(), HasSubstr("statement timeout (300ms)"));
  EXPECT_TRUE(other.ok()) << other.error_message();
}

struct Answer {
  grpc::StatusCode code = grpc::StatusCode::OK;
  absl::Duration took;
};

// Calls with no deadline of their own (60 s) against a database gone
// silent: what bounds them is rowgate.
TEST(TimeoutsTest, SilentDatabaseAnswersInBoundedTimeAndSigtermExitsInGrace) {
  const std::string db_url = testing::TestDatabaseUrl();
  PostgresProxy proxy(UnixSocketOf(db_url));
  auto server = RowgateProcess::Start(
      {"--database_url=" + TcpUrl(proxy.port(), db_url), "--pool_size=2",
       absl::StrCat("--db_connect_timeout_s=", kConnectTimeoutS),
       absl::StrCat("--statement_timeout_ms=", kStatementTimeoutMs),
       absl::StrCat("--shutdown_grace_s=", kGraceS),
       "--health_check_interval_ms=200"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(client.MustGet("users", 1).fields().contains("id"));
  ASSERT_EQ(Health(*server), HealthCheckResponse::SERVING);

  proxy.GoSilent();
  // Lookups, a write and a page at once, on two connections: each waits at
  // most its statement's bound plus the cancel grace, or a connect timeout
  // per reconnect queued before it.
  constexpr int kCalls = 6;
  std::vector<Answer> answers(kCalls);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      const absl::Time start = absl::Now();
      grpc::Status status;
      auto context = e2e::NewContext(absl::Seconds(60));
      if (i == 0) {
        v1::InsertRequest request;
        request.set_entity("users");
        *request.add_rows() = e2e::MakeRow({{"name", e2e::Str("silent")}});
        v1::InsertResponse response;
        status = client.data()->Insert(context.get(), request, &response);
      } else if (i == 1) {
        v1::PageRequest request;
        request.set_entity("users");
        v1::PageResponse response;
        status = client.data()->Page(context.get(), request, &response);
      } else {
        v1::BatchGetResponse response;
        status = client.data()->BatchGet(
            context.get(), e2e::BatchGetRequest("users", {e2e::Int(i)}),
            &response);
      }
      answers[i] = {status.error_code(), absl::Now() - start};
    });
  }
  for (auto& t : callers) t.join();
  const absl::Duration bound =
      absl::Milliseconds(kStatementTimeoutMs) + absl::Seconds(1) +
      absl::Seconds(kConnectTimeoutS) * kCalls + kMargin;
  absl::Duration slowest;
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(absl::StrCat("call ", i));
    EXPECT_THAT(answers[i].code, AnyOf(grpc::StatusCode::UNAVAILABLE,
                                       grpc::StatusCode::DEADLINE_EXCEEDED));
    EXPECT_LT(answers[i].took, bound) << server->OutputTail();
    slowest = std::max(slowest, answers[i].took);
  }
  std::cout << "[ timeouts ] " << kCalls
            << " calls against a silent database, slowest answered after "
            << slowest << std::endl;

  // The health check (bounded by the connect timeout) notices too.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Health(*server) != HealthCheckResponse::NOT_SERVING &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Health(*server), HealthCheckResponse::NOT_SERVING);

  // SIGTERM once a worker is stuck connecting to the silent database (the
  // proxy accepted its connection), with calls waiting for workers.
  const int accepted_before = proxy.accepted_while_silent();
  std::vector<std::thread> late;
  for (int i = 0; i < 4; ++i) {
    late.emplace_back([&, i] {
      v1::BatchGetResponse response;
      auto context = e2e::NewContext(absl::Seconds(60));
      client.data()->BatchGet(context.get(),
                              e2e::BatchGetRequest("users", {e2e::Int(20 + i)}),
                              &response);
    });
  }
  const absl::Time wait_until = absl::Now() + absl::Seconds(10);
  while (proxy.accepted_while_silent() == accepted_before &&
         absl::Now() < wait_until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_GT(proxy.accepted_while_silent(), accepted_before);
  const absl::Time sigterm = absl::Now();
  server->Signal(SIGTERM);
  const auto exit = server->WaitForExit(absl::Seconds(kGraceS) + kMargin);
  const absl::Duration took = absl::Now() - sigterm;
  for (auto& t : late) t.join();
  ASSERT_TRUE(exit.has_value())
      << "rowgate still running " << took << " after SIGTERM; its output:\n"
      << server->OutputTail();
  std::cout << "[ timeouts ] SIGTERM with workers stuck connecting: exited "
               "after "
            << took << " (--shutdown_grace_s=" << kGraceS << ")" << std::endl;
  EXPECT_TRUE(WIFEXITED(exit->wait_status) &&
              WEXITSTATUS(exit->wait_status) == 0)
      << server->OutputTail();
}

// The request log's purger, caught in a purge by a database that stopped
// answering, stops at once when it is destroyed (as at shutdown) instead of
// waiting out its statement bound (60 s here).
TEST(TimeoutsTest, RequestLogPurgerCaughtBySilentDatabaseStopsAtOnce) {
  const std::string db_url = testing::TestDatabaseUrl();
  storage::RequestLog log;
  {
    storage::Connection setup(db_url);
    ASSERT_TRUE(log.EnsureTable(setup).ok());
  }
  PostgresProxy proxy(UnixSocketOf(db_url));
  storage::DatabaseTimeouts timeouts;
  timeouts.statement = absl::Seconds(60);
  auto purger = std::make_unique<storage::RequestLogPurger>(
      log, storage::RequestLogPurger::Options{
               .database_url = TcpUrl(proxy.port(), db_url),
               .timeouts = timeouts,
               .retention = absl::Hours(1),
               .interval = absl::Milliseconds(50)});
  // Its connection has purged through the proxy: PostgreSQL shows the
  // purge as that backend's last statement.
  pqxx::connection admin(db_url);
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  bool purged_once = false;
  while (!purged_once && absl::Now() < give_up) {
    pqxx::nontransaction txn(admin);
    purged_once =
        txn.exec(
               "SELECT 1 FROM pg_stat_activity WHERE application_name = "
               "'rowgate' AND query LIKE 'DELETE FROM%request_log%'")
            .size() > 0;
    if (!purged_once) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(purged_once);
  proxy.GoSilent();
  // Its next purges (every 50 ms) now go unanswered; let one be under way.
  absl::SleepFor(absl::Milliseconds(500));
  const absl::Time start = absl::Now();
  purger.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10))
      << "the purger waited for its statement's bound";
}

// A client's cancel that reaches PostgreSQL before its statement does (the
// backend is idle: PostgreSQL drops the request) is sent again while the
// statement runs, so the statement is still cancelled. Here the proxy holds
// the statement back until the first cancel request has come and gone;
// without the resend, the statement ran to its statement timeout.
TEST(TimeoutsTest, CancelThatArrivesBeforeItsStatementIsSentAgain) {
  const std::string db_url = testing::TestDatabaseUrl();
  PostgresProxy proxy(UnixSocketOf(db_url));
  storage::DeadlineWatchdog watchdog;
  storage::DatabaseTimeouts timeouts;
  timeouts.statement = absl::Seconds(20);
  storage::Connection conn(TcpUrl(proxy.port(), db_url), &watchdog, timeouts);
  ASSERT_TRUE(conn.Execute("SELECT 1", {}).ok());
  const int backend = conn.backend_pid();

  storage::StatementCancel cancel;
  conn.set_statement_cancel(&cancel);
  proxy.HoldClientBytes();
  absl::StatusOr<storage::QueryResult> slept;
  absl::Time ended;
  std::thread runner([&] {
    slept = conn.Execute("SELECT pg_sleep(60)", {});
    ended = absl::Now();
  });
  // The statement is sent (and held); the cancel request, on a connection
  // of its own, is not held and finds the backend idle.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (proxy.held_bytes() == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GT(proxy.held_bytes(), 0u) << "the statement was never sent";
  cancel.Cancel();
  absl::SleepFor(absl::Milliseconds(500));
  const absl::Time released = absl::Now();
  proxy.ReleaseHeldBytes();
  runner.join();
  EXPECT_EQ(slept.status().code(), absl::StatusCode::kCancelled)
      << slept.status();
  EXPECT_LT(ended - released, absl::Seconds(5))
      << "the statement ran on after its cancel was lost";

  // The connection (the same backend) serves the next statement.
  conn.set_statement_cancel(nullptr);
  absl::StatusOr<storage::QueryResult> after = conn.Execute("SELECT 2", {});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(conn.backend_pid(), backend);
}

}  // namespace
}  // namespace rowgate::faults
