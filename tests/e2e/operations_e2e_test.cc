// Operating rowgate: health follows PostgreSQL's reachability, a unix socket
// serves like TCP, and SIGTERM under load lets in-flight calls finish.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "rowgate/v1/rowgate.grpc.pb.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::e2e {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

using ChannelPtr = std::shared_ptr<grpc::Channel>;

HealthCheckResponse::ServingStatus CheckHealth(const ChannelPtr& channel,
                                               const std::string& service) {
  auto stub = Health::NewStub(channel);
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return HealthCheckResponse::UNKNOWN;
  return response.status();
}

// Polls until the health status is `want` or 10 s pass.
bool AwaitHealth(const ChannelPtr& channel,
                 HealthCheckResponse::ServingStatus want) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (absl::Now() < give_up) {
    if (CheckHealth(channel, "") == want &&
        CheckHealth(channel, "rowgate.v1.DataService") == want) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

grpc::Status GetUser(const ChannelPtr& channel, int64_t id,
                     v1::BatchGetResponse* response) {
  auto stub = v1::DataService::NewStub(channel);
  auto context = NewContext(absl::Seconds(10));
  return stub->BatchGet(context.get(), BatchGetRequest("users", Ints({id})),
                        response);
}

// The names of the process's threads (/proc/<pid>/task/*/comm), one per
// thread, e.g. "nexting_thread".
std::vector<std::string> ThreadNames(pid_t pid) {
  std::vector<std::string> names;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) names.push_back(name);
  }
  return names;
}

// One call of every service rowgate serves, each answered OK.
void CallEveryService(const ChannelPtr& channel) {
  EXPECT_EQ(CheckHealth(channel, ""), HealthCheckResponse::SERVING);
  {
    auto reflection = grpc::reflection::v1::ServerReflection::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    auto stream = reflection->ServerReflectionInfo(&context);
    grpc::reflection::v1::ServerReflectionRequest request;
    request.set_list_services("");
    ASSERT_TRUE(stream->Write(request));
    grpc::reflection::v1::ServerReflectionResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_GE(response.list_services_response().service_size(), 5);
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
  }
  Client client(channel);
  client.MustGetLoaderStats();
  v1::BatchGetResponse response;
  EXPECT_TRUE(GetUser(channel, 1, &response).ok());
  auto data = v1::DataService::NewStub(channel);
  auto context = NewContext(absl::Seconds(10));
  v1::ListEntitiesResponse entities;
  EXPECT_TRUE(
      data->ListEntities(context.get(), v1::ListEntitiesRequest(), &entities)
          .ok());
}

// On the CQ API (the default) every service is served without gRPC's
// callback-API threads: a single callback method on the server would start
// gRPC 1.51's "nexting" threads, which poll the same connections as the CQ
// thread and cost CPU per call (service/cq_server.h). With --cq_threads=0
// (the callback API) they are there, which shows this test can see them.
TEST(ServingModelTest, CqServerRunsNoCallbackApiThreads) {
  auto cq = RowgateProcess::Start();
  ASSERT_NE(cq, nullptr);
  CallEveryService(cq->NewChannel());
  EXPECT_THAT(ThreadNames(cq->pid()),
              ::testing::Not(::testing::Contains("nexting_thread")));

  auto callback = RowgateProcess::Start({"--cq_threads=0"});
  ASSERT_NE(callback, nullptr);
  CallEveryService(callback->NewChannel());
  EXPECT_THAT(ThreadNames(callback->pid()),
              ::testing::Contains("nexting_thread"));
}

// The test database's URL pointed at the `postgres` maintenance database
// (PostgreSQL cannot block connections to the database one is connected to).
std::string MaintenanceUrl(const std::string& db) {
  std::string url = testing::TestDatabaseUrl();
  const std::string path = "/" + db;
  const size_t at = url.find(path + "?");
  if (at != std::string::npos) {
    url.replace(at, path.size(), "/postgres");
  } else if (url.size() >= path.size() &&
             url.compare(url.size() - path.size(), path.size(), path) == 0) {
    url.replace(url.size() - path.size(), path.size(), "/postgres");
  }
  return url;
}

// NOT_SERVING while PostgreSQL refuses connections (a background check, not
// a query per probe), SERVING again once it is back.
TEST(OperationsTest, HealthFollowsPostgresReachability) {
  auto server = RowgateProcess::Start({"--health_check_interval_ms=100"});
  ASSERT_NE(server, nullptr);
  auto channel = server->NewChannel();
  ASSERT_TRUE(AwaitHealth(channel, HealthCheckResponse::SERVING));

  const std::string db = pqxx::connection(testing::TestDatabaseUrl()).dbname();
  pqxx::connection admin(MaintenanceUrl(db));
  ASSERT_EQ(std::string(admin.dbname()), "postgres");
  pqxx::nontransaction sql(admin);
  sql.exec("ALTER DATABASE \"" + db + "\" ALLOW_CONNECTIONS false");
  sql.exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
      "application_name = 'rowgate' AND datname = " +
      sql.quote(db));
  const bool went_down = AwaitHealth(channel, HealthCheckResponse::NOT_SERVING);
  v1::BatchGetResponse response;
  const grpc::Status while_down = GetUser(channel, 1, &response);
  sql.exec("ALTER DATABASE \"" + db + "\" ALLOW_CONNECTIONS true");

  EXPECT_TRUE(went_down) << server->OutputTail();
  EXPECT_EQ(while_down.error_code(), grpc::StatusCode::UNAVAILABLE)
      << while_down.error_message();
  EXPECT_TRUE(AwaitHealth(channel, HealthCheckResponse::SERVING))
      << server->OutputTail();
  EXPECT_TRUE(GetUser(channel, 1, &response).ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_TRUE(response.results(0).found());
}

TEST(OperationsTest, ServesOnAUnixSocketBesideTcp) {
  const std::string socket =
      absl::StrCat("/tmp/rowgate-e2e-", getpid(), ".sock");
  auto server = RowgateProcess::Start(
      {absl::StrCat("--listen=127.0.0.1:0,unix:", socket)});
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(absl::StrCat("unix:", socket),
                                     grpc::InsecureChannelCredentials());
  v1::BatchGetResponse response;
  grpc::Status status = GetUser(channel, 2, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(IdOf(response.results(0).rows(0)), 2);
}

// SIGTERM while calls wait on the database: health turns NOT_SERVING, the
// calls in flight still complete successfully, and the server exits 0.
TEST(OperationsTest, SigtermUnderLoadLetsInFlightCallsFinish) {
  auto server = RowgateProcess::Start({"--shutdown_grace_s=20"});
  ASSERT_NE(server, nullptr);
  auto channel = server->NewChannel();
  Client client(channel);

  // A health watch opened before the signal: it sees the change while the
  // listener no longer takes new calls.
  auto health = Health::NewStub(channel);
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
  HealthCheckRequest watch_request;
  auto watch = health->Watch(&watch_context, watch_request);
  HealthCheckResponse watched;
  ASSERT_TRUE(watch->Read(&watched));
  ASSERT_EQ(watched.status(), HealthCheckResponse::SERVING);

  // Hold the users table so lookups stay in flight until we let go.
  pqxx::connection admin(testing::TestDatabaseUrl());
  auto lock = std::make_unique<pqxx::work>(admin);
  lock->exec("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");

  constexpr int kCalls = 30;
  const v1::LoaderStats before = client.MustGetLoaderStats();
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      v1::BatchGetResponse response;
      grpc::Status status = GetUser(channel, 1 + i % 10, &response);
      if (status.ok() && response.results_size() == 1 &&
          response.results(0).found()) {
        ++ok;
      } else {
        ++failed;
      }
    });
  }
  // In flight: every lookup has reached the loader, and a rowgate backend
  // waits for the lock with the merged query.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  bool in_flight = false;
  while (!in_flight && absl::Now() < give_up) {
    const v1::LoaderStats now = client.MustGetLoaderStats();
    in_flight =
        now.requests() - before.requests() == kCalls &&
        testing::ExecSql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'rowgate' AND datname = current_database() AND "
            "wait_event_type = 'Lock'")[0][0] != "0";
    if (!in_flight) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(in_flight) << "the calls never waited on the lock";
  server->Signal(SIGTERM);
  // NOT_SERVING while the calls are still held by the lock.
  const bool read = watch->Read(&watched);
  const HealthCheckResponse::ServingStatus during_shutdown =
      read ? watched.status() : HealthCheckResponse::UNKNOWN;
  const int finished_before_release = ok.load() + failed.load();
  watch_context.TryCancel();  // else the watch is a call in flight too
  lock->commit();             // the database answers; in-flight calls complete
  for (auto& t : callers) t.join();
  RowgateProcess::ExitInfo exit = server->Stop();

  EXPECT_EQ(during_shutdown, HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(finished_before_release, 0);
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_FALSE(exit.needed_sigkill);
  EXPECT_TRUE(WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 0)
      << server->OutputTail();
}

// A SIGTERM while start-up retries an unreachable PostgreSQL (a pod deleted
// while its database is down) ends rowgate at once, with status 0, instead
// of after --startup_timeout_s.
TEST(OperationsTest, SigtermWhileStartupRetriesExitsAtOnce) {
  // Nothing listens on port 1: every connection attempt is refused.
  auto server = RowgateProcess::Spawn(
      {"--database_url=postgresql://rowgate@127.0.0.1:1/rowgate",
       "--startup_timeout_s=120"});
  ASSERT_NE(server, nullptr);
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!absl::StrContains(server->OutputTail(), "retrying") &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(absl::StrContains(server->OutputTail(), "retrying"))
      << server->OutputTail();
  const absl::Time signalled = absl::Now();
  server->Signal(SIGTERM);
  const std::optional<RowgateProcess::ExitInfo> exit =
      server->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(exit.has_value()) << "still retrying 10 s after SIGTERM:\n"
                                << server->OutputTail();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(2));
  EXPECT_TRUE(WIFEXITED(exit->wait_status) &&
              WEXITSTATUS(exit->wait_status) == 0)
      << server->OutputTail();
  EXPECT_THAT(server->OutputTail(),
              ::testing::HasSubstr("stopped before serving"));
}

// A statement that outlives its caller's deadline is cancelled in
// PostgreSQL, so the connection returns to the pool: with one connection and
// `users` locked, a Page and a BatchGet on users time out, and a lookup on
// another table then succeeds while the lock is still held.
TEST(OperationsTest, DeadlineCancelsTheStatementInPostgres) {
  auto server = RowgateProcess::Start({"--pool_size=1"});
  ASSERT_NE(server, nullptr);
  auto stub = v1::DataService::NewStub(server->NewChannel());

  pqxx::connection admin(testing::TestDatabaseUrl());
  auto lock = std::make_unique<pqxx::work>(admin);
  lock->exec("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");

  v1::PageRequest page;
  page.set_entity("users");
  v1::PageResponse page_response;
  auto page_context = NewContext(absl::Milliseconds(300));
  const grpc::Status page_status =
      stub->Page(page_context.get(), page, &page_response);

  v1::BatchGetResponse users_response;
  auto users_context = NewContext(absl::Milliseconds(300));
  const grpc::Status users_status =
      stub->BatchGet(users_context.get(), BatchGetRequest("users", Ints({1})),
                     &users_response);

  v1::BatchGetResponse types_response;
  auto types_context = NewContext(absl::Seconds(5));
  const grpc::Status types_status = stub->BatchGet(
      types_context.get(), BatchGetRequest("grouptypes", Ints({11})),
      &types_response);
  // No rowgate backend is left waiting for the lock.
  const auto waiting = testing::ExecSql(
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
      "'rowgate' AND datname = current_database() AND wait_event_type = "
      "'Lock'");
  lock->commit();

  EXPECT_EQ(page_status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(users_status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(types_status.ok()) << types_status.error_message() << "\n"
                                 << server->OutputTail();
  ASSERT_EQ(types_response.results_size(), 1);
  EXPECT_TRUE(types_response.results(0).found());
  EXPECT_EQ(waiting[0][0], "0");
}

// A BatchGet of grouptype 11 (not `users`, which the tests below lock),
// with a 5 s deadline: OK only when it found the row.
grpc::Status LookUpAGrouptype(Client& client) {
  v1::BatchGetResponse response;
  auto context = NewContext(absl::Seconds(5));
  grpc::Status status = client.data()->BatchGet(
      context.get(), BatchGetRequest("grouptypes", Ints({11})), &response);
  if (status.ok() &&
      (response.results_size() != 1 || !response.results(0).found())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "grouptype 11 missing");
  }
  return status;
}

// A caller that goes away frees the database connection its lookup holds:
// with one connection and `users` locked, a BatchGet on users with a long
// deadline is cancelled by its client, and a lookup on another table then
// succeeds while the lock is still held (before, it waited behind the
// abandoned statement until the lock or the statement timeout ended it).
TEST(OperationsTest, CancelledCallerCancelsTheStatementInPostgres) {
  auto server = RowgateProcess::Start({"--pool_size=1"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  const v1::LoaderStats before = client.MustGetLoaderStats();

  pqxx::connection admin(testing::TestDatabaseUrl());
  auto lock = std::make_unique<pqxx::work>(admin);
  lock->exec("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
  const auto backends_waiting = [] {
    return testing::ExecSql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
        "'rowgate' AND datname = current_database() AND wait_event_type = "
        "'Lock'")[0][0];
  };

  auto users_context = NewContext(absl::Seconds(60));
  grpc::Status users_status;
  std::thread caller([&] {
    v1::BatchGetResponse response;
    users_status = client.data()->BatchGet(
        users_context.get(), BatchGetRequest("users", Ints({1})), &response);
  });
  // Its statement waits for the lock.
  absl::Time until = absl::Now() + absl::Seconds(10);
  while (backends_waiting() != "1" && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(backends_waiting(), "1");
  users_context->TryCancel();
  caller.join();

  const grpc::Status types_status = LookUpAGrouptype(client);
  const std::string waiting_after = backends_waiting();
  lock->commit();

  EXPECT_EQ(users_status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(types_status.ok()) << types_status.error_message() << "\n"
                                 << server->OutputTail();
  EXPECT_EQ(waiting_after, "0");
  const v1::LoaderStats after = client.MustGetLoaderStats();
  EXPECT_EQ(after.cancelled_queries(), before.cancelled_queries() + 1);
  EXPECT_EQ(after.failed_queries(), before.failed_queries());
}

// A Page or a write whose client cancels it is cancelled in PostgreSQL
// too, as a lookup is: with one connection and `users` locked, each call
// below waits for the lock, its client cancels, and a lookup on another
// table then succeeds while the lock is still held. Every case waits on
// the same backend: a cancelled transaction (first) ends with ROLLBACK,
// not by closing the connection. Nothing of the cancelled writes is
// written. Before, each held the pool's one connection until the lock or
// the statement timeout ended it.
TEST(OperationsTest, CancelledPageAndWritesCancelTheirStatementsInPostgres) {
  auto server = RowgateProcess::Start({"--pool_size=1"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  const std::string tag = UniqueTag("cancelw");
  const auto insert = [&](const std::string& suffix,
                          const std::string& request_id) {
    v1::InsertRequest request;
    request.set_entity("users");
    request.set_request_id(request_id);
    *request.add_rows() =
        MakeRow({{"name", Str("Cancelled")},
                 {"email", Str(absl::StrCat(tag, suffix, "@cancel.test"))}});
    return request;
  };
  struct Case {
    std::string name;
    std::function<grpc::Status(grpc::ClientContext*)> call;
  };
  const std::vector<Case> cases = {
      {"Insert with request_id (a transaction)",
       [&](grpc::ClientContext* context) {
         v1::InsertResponse response;
         return client.data()->Insert(context, insert("b", tag), &response);
       }},
      {"Page",
       [&](grpc::ClientContext* context) {
         v1::PageRequest request;
         request.set_entity("users");
         v1::PageResponse response;
         return client.data()->Page(context, request, &response);
       }},
      {"Insert",
       [&](grpc::ClientContext* context) {
         v1::InsertResponse response;
         return client.data()->Insert(context, insert("a", ""), &response);
       }},
  };
  const auto backends = [](const std::string& where) {
    return testing::ExecSql(absl::StrCat(
        "SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM "
        "pg_stat_activity WHERE application_name = 'rowgate' AND datname = "
        "current_database()",
        where))[0][0];
  };
  const std::string waiting_for_lock = " AND wait_event_type = 'Lock'";
  // The pool's backend, as seen waiting for the lock by the first case.
  std::string pool_backend;

  pqxx::connection admin(testing::TestDatabaseUrl());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto lock = std::make_unique<pqxx::work>(admin);
    lock->exec("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
    auto context = NewContext(absl::Seconds(60));
    grpc::Status status;
    std::thread caller([&] { status = c.call(context.get()); });
    absl::Time until = absl::Now() + absl::Seconds(10);
    while (backends(waiting_for_lock).empty() && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    const std::string waiter = backends(waiting_for_lock);
    if (pool_backend.empty()) pool_backend = waiter;
    context->TryCancel();
    caller.join();

    const grpc::Status types_status = LookUpAGrouptype(client);
    const std::string waiting_after = backends(waiting_for_lock);
    lock->commit();

    ASSERT_FALSE(waiter.empty()) << "the call never waited for the lock";
    EXPECT_EQ(waiter, pool_backend) << "the pool's connection was replaced";
    EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_TRUE(types_status.ok()) << types_status.error_message() << "\n"
                                   << server->OutputTail();
    EXPECT_EQ(waiting_after, "");
  }
  EXPECT_EQ(testing::ExecSql(
                absl::StrCat("SELECT count(*) FROM users WHERE email LIKE ",
                             SqlQuote(absl::StrCat(tag, "%"))))[0][0],
            "0");
}

// The value of the sample `series` (name and labels, exactly as printed) in
// a Prometheus text page; -1 when absent.
double Sample(const std::string& page, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double value;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) {
        return value;
      }
    }
  }
  return -1;
}

// /metrics serves per-RPC counts by code, latency histograms and the
// loader's counters, and they move as calls are made.
TEST(OperationsTest, MetricsMoveAsCallsAreMade) {
  const std::string port_file =
      absl::StrCat("/tmp/rowgate-e2e-metrics-", getpid());
  auto server = RowgateProcess::Start(
      {"--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + port_file});
  ASSERT_NE(server, nullptr);
  int port = 0;
  {
    std::ifstream in(port_file);
    in >> port;
  }
  std::remove(port_file.c_str());
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  auto scrape = [&http]() -> std::string {
    auto response = http.Get("/metrics");
    if (!response || response->status != 200) return "";
    return response->body;
  };
  const std::string ok_calls =
      "rowgate_rpc_requests_total{method=\"/rowgate.v1.DataService/"
      "BatchGet\",code=\"OK\"}";
  const std::string bad_calls =
      "rowgate_rpc_requests_total{method=\"/rowgate.v1.DataService/"
      "BatchGet\",code=\"INVALID_ARGUMENT\"}";
  const std::string latency_count =
      "rowgate_rpc_latency_seconds_count{method=\"/rowgate.v1.DataService/"
      "BatchGet\"}";
  const std::string before = scrape();
  ASSERT_FALSE(before.empty());
  const double keys_before = Sample(before, "rowgate_loader_keys_total");
  EXPECT_EQ(Sample(before, "rowgate_up"), 1);
  EXPECT_EQ(Sample(before, "rowgate_pool_connections"), 4);

  auto channel = server->NewChannel();
  for (int i = 1; i <= 3; ++i) {
    v1::BatchGetResponse response;
    ASSERT_TRUE(GetUser(channel, i, &response).ok());
  }
  auto stub = v1::DataService::NewStub(channel);
  v1::BatchGetResponse response;
  auto context = NewContext();
  EXPECT_EQ(stub->BatchGet(context.get(), BatchGetRequest("nope", Ints({1})),
                           &response)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  const std::string after = scrape();
  EXPECT_EQ(Sample(after, ok_calls),
            std::max(0.0, Sample(before, ok_calls)) + 3)
      << after;
  EXPECT_EQ(Sample(after, bad_calls), 1) << after;
  EXPECT_EQ(Sample(after, latency_count), 4) << after;
  EXPECT_EQ(Sample(after, "rowgate_loader_keys_total"), keys_before + 3);
  EXPECT_GE(Sample(after, "rowgate_loader_queries_total"), 1);
}

}  // namespace
}  // namespace rowgate::e2e
