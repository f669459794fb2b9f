// PostgreSQL crashed (pg_ctl stop -m immediate) and restarted under mixed
// read and write load, on a durable instance (fsync, synchronous_commit and
// full_page_writes on; `make test-faults` starts it): rowgate does not
// crash, calls fail fast with UNAVAILABLE while the database is down, the
// service is back within 2 s of PostgreSQL accepting connections again, and
// every acknowledged write is present afterwards. Prints the measured
// figures (README "Reliability").
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::faults {
namespace {

using e2e::Client;
using e2e::Int;
using e2e::RowgateProcess;
using e2e::Str;
namespace v1 = ::rowgate::v1;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// Runs `pg.sh <command>` on the durable instance; true on success.
bool DurablePg(const std::string& command) {
  const std::string line =
      absl::StrCat("PG_DURABLE=1 bash '", ROWGATE_PG_SH, "' ", command);
  const int status = std::system(line.c_str());
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Call {
  bool write = false;
  absl::Time started;
  absl::Time finished;
  grpc::StatusCode code = grpc::StatusCode::OK;
};

// One Insert of the load: `rows` users with surname `tag`.
struct Write {
  std::string tag;
  int rows = 0;
  bool acknowledged = false;
};

absl::Duration Percentile(std::vector<absl::Duration> v, double p) {
  if (v.empty()) return absl::ZeroDuration();
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

TEST(PostgresRestartTest, CrashAndRestartUnderLoadLosesNoAcknowledgedWrite) {
  const std::string url = Env("ROWGATE_DURABLE_DATABASE_URL");
  ASSERT_FALSE(url.empty())
      << "ROWGATE_DURABLE_DATABASE_URL is not set: run `make test-faults`, "
         "which starts a durable Postgres for this test";
  {
    pqxx::connection conn(url);
    pqxx::nontransaction txn(conn);
    ASSERT_EQ(txn.exec("SHOW fsync")[0][0].as<std::string>(), "on");
    ASSERT_EQ(txn.exec("SHOW synchronous_commit")[0][0].as<std::string>(),
              "on");
    ASSERT_EQ(txn.exec("SHOW full_page_writes")[0][0].as<std::string>(), "on");
  }
  auto server = RowgateProcess::Start({"--database_url=" + url, "--pool_size=4",
                                       "--health_check_interval_ms=100"});
  ASSERT_NE(server, nullptr);

  const std::string prefix = e2e::UniqueTag("restart");
  constexpr int kReaders = 4;
  constexpr int kWriters = 4;
  constexpr int kMaxCallsPerThread = 200000;  // a bound; stop comes sooner
  absl::Mutex mu;
  std::vector<Call> calls;    // guarded by mu
  std::vector<Write> writes;  // guarded by mu
  std::atomic<bool> stop{false};
  // Successful / failed calls of each kind so far.
  std::atomic<int> ok[2] = {0, 0};
  std::atomic<int> failed[2] = {0, 0};
  auto run = [&](bool write, int thread) {
    Client client(server->NewChannel());
    for (int i = 0; i < kMaxCallsPerThread && !stop.load(); ++i) {
      Call call{write, absl::Now()};
      Write w;
      grpc::Status status;
      auto context = e2e::NewContext(absl::Seconds(2));
      if (write) {
        w = {absl::StrCat(prefix, "-", thread, "-", i), 1 + i % 3};
        v1::InsertRequest request;
        request.set_entity("users");
        for (int r = 0; r < w.rows; ++r) {
          *request.add_rows() = e2e::MakeRow(
              {{"name", Str(absl::StrCat("r", r))}, {"surname", Str(w.tag)}});
        }
        v1::InsertResponse response;
        status = client.data()->Insert(context.get(), request, &response);
        w.acknowledged = status.ok() && response.rows_size() == w.rows;
      } else {
        v1::BatchGetResponse response;
        status = client.data()->BatchGet(
            context.get(), e2e::BatchGetRequest("users", {Int(1 + i % 10)}),
            &response);
      }
      call.finished = absl::Now();
      call.code = status.error_code();
      (status.ok() ? ok : failed)[write].fetch_add(1);
      absl::MutexLock lock(&mu);
      calls.push_back(call);
      if (write) writes.push_back(w);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kReaders; ++t) threads.emplace_back(run, false, t);
  for (int t = 0; t < kWriters; ++t) threads.emplace_back(run, true, t);
  // Waits (up to 30 s) until `done` holds; false if it never does.
  auto await = [](auto done) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (!done() && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return done();
  };
  auto finish = [&] {
    stop = true;
    for (auto& t : threads) t.join();
  };

  EXPECT_TRUE(await([&] { return ok[0] >= 200 && ok[1] >= 200; }))
      << "no steady load before the crash";
  if (!DurablePg("crash")) {
    finish();
    FAIL() << "pg_ctl stop -m immediate failed";
  }
  const absl::Time down = absl::Now();
  const int failed_at_crash[2] = {failed[0].load(), failed[1].load()};
  // Down until both kinds have failed a good number of times.
  EXPECT_TRUE(await([&] {
    return failed[0] - failed_at_crash[0] >= 2000 &&
           failed[1] - failed_at_crash[1] >= 2000;
  })) << server->OutputTail();
  // When PostgreSQL accepts connections again, to ~10 ms: pg_ctl start -w
  // itself only polls for it.
  const absl::Time restart = absl::Now();
  std::atomic<bool> accepting{false};
  absl::Time up;
  std::thread poller([&] {
    const absl::Time give_up = absl::Now() + absl::Seconds(60);
    while (absl::Now() < give_up) {
      try {
        pqxx::connection probe(url);
        up = absl::Now();
        accepting = true;
        return;
      } catch (const std::exception&) {
        absl::SleepFor(absl::Milliseconds(10));
      }
    }
  });
  const bool restarted = DurablePg("start");
  poller.join();
  if (!restarted || !accepting) {
    finish();
    FAIL() << "cannot restart the durable Postgres";
  }
  const int ok_at_up[2] = {ok[0].load(), ok[1].load()};
  EXPECT_TRUE(await([&] {
    return ok[0] - ok_at_up[0] >= 200 && ok[1] - ok_at_up[1] >= 200;
  })) << server->OutputTail();
  finish();

  // Calls started while the database was down: how fast they failed, and
  // with what. Calls in flight at the crash may fail otherwise (the
  // connection broke under them) and are left out.
  std::vector<absl::Duration> down_latency;
  int down_calls = 0, down_unavailable = 0, down_ok = 0;
  absl::Time back[2] = {absl::InfiniteFuture(), absl::InfiniteFuture()};
  {
    absl::MutexLock lock(&mu);
    for (const Call& c : calls) {
      if (c.started > down && c.finished < restart) {
        ++down_calls;
        if (c.code == grpc::StatusCode::UNAVAILABLE) ++down_unavailable;
        if (c.code == grpc::StatusCode::OK) ++down_ok;
        down_latency.push_back(c.finished - c.started);
      }
      if (c.code == grpc::StatusCode::OK && c.finished > up) {
        back[c.write] = std::min(back[c.write], c.finished);
      }
    }
  }
  const absl::Duration read_back = std::max(absl::ZeroDuration(), back[0] - up);
  const absl::Duration write_back =
      std::max(absl::ZeroDuration(), back[1] - up);
  std::cout << "[ restart  ] while down: " << down_calls << " calls, "
            << down_unavailable << " UNAVAILABLE, failing after median "
            << Percentile(down_latency, 0.5) << ", p99 "
            << Percentile(down_latency, 0.99) << ", max "
            << Percentile(down_latency, 1.0) << std::endl;
  std::cout << "[ restart  ] back after Postgres accepted connections: reads "
            << read_back << ", writes " << write_back << std::endl;
  EXPECT_GT(down_calls, 0);
  EXPECT_EQ(down_ok, 0);
  EXPECT_EQ(down_unavailable, down_calls) << "every failure is UNAVAILABLE";
  // Fail fast: far below the calls' 2 s deadline.
  EXPECT_LT(Percentile(down_latency, 1.0), absl::Seconds(1));
  EXPECT_LE(read_back, absl::Seconds(2));
  EXPECT_LE(write_back, absl::Seconds(2));

  // Every acknowledged write survived the crash; none is partial.
  std::map<std::string, int> stored;
  {
    pqxx::connection conn(url);
    pqxx::nontransaction txn(conn);
    for (const auto& row : txn.exec_params(
             "SELECT surname, count(*) FROM users WHERE surname LIKE $1 "
             "GROUP BY surname",
             prefix + "%")) {
      stored[row[0].as<std::string>()] = row[1].as<int>();
    }
  }
  int acknowledged = 0, lost = 0, partial = 0;
  {
    absl::MutexLock lock(&mu);
    for (const Write& w : writes) {
      const auto it = stored.find(w.tag);
      const int rows = it == stored.end() ? 0 : it->second;
      if (w.acknowledged) {
        ++acknowledged;
        if (rows != w.rows) ++lost;
      } else if (rows != 0 && rows != w.rows) {
        ++partial;
      }
    }
  }
  std::cout << "[ restart  ] " << acknowledged
            << " acknowledged Inserts, all present: "
            << (lost == 0 ? "yes" : "NO") << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(partial, 0);
  // rowgate itself never went down: it still stops cleanly.
  RowgateProcess::ExitInfo exit = server->Stop();
  EXPECT_TRUE(WIFEXITED(exit.wait_status) &&
              WEXITSTATUS(exit.wait_status) == 0);
}

}  // namespace
}  // namespace rowgate::faults
