// rowgate_feed_latency: how long a change committed elsewhere takes to reach
// a ChangeFeed's listener (storage/change_feed.h), the visibility lag the
// row cache adds to. Commits --commits single-row inserts one after another
// on a libpqxx connection and times, for each, the commit call's return and
// the OnCommit carrying its key; prints p50/p90/p99/max.
//
//   bash deploy/local/with-pg.sh rowgate_test \
//     build/bench/rowgate_feed_latency --commits=500 --synchronous_commit=on
//
// Uses (and recreates) schema rowgate_feed_bench and publication
// rowgate_feed_bench in the database of ROWGATE_TEST_DATABASE_URL or
// --database_url.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/catalog.h"
#include "storage/change_feed.h"
#include "storage/connection.h"

ABSL_FLAG(std::string, database_url, "",
          "libpq URL (default: $ROWGATE_TEST_DATABASE_URL)");
ABSL_FLAG(int, commits, 500, "number of commits to time (1..100000)");
ABSL_FLAG(std::string, synchronous_commit, "",
          "the committing session's synchronous_commit (empty: the server's)");

namespace {

using rowgate::storage::ChangedKeys;
using rowgate::storage::Lsn;

// Remembers the newest key committed and when it arrived.
class LatestKey : public rowgate::storage::ChangeListener {
 public:
  void OnCommit(Lsn, const std::vector<ChangedKeys>& changes) override {
    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu_);
    for (const ChangedKeys& c : changes) {
      for (const std::string& k : c.keys) {
        last_key_ = k;
        arrived_ = now;
      }
    }
    cv_.notify_all();
  }
  void OnTruncate(Lsn, const rowgate::storage::Entity&) override {}
  void OnInterrupted(const absl::Status& why) override {
    std::fprintf(stderr, "interrupted: %s\n", why.ToString().c_str());
  }
  void OnLive(Lsn) override {
    std::lock_guard<std::mutex> lock(mu_);
    live_ = true;
    cv_.notify_all();
  }
  bool WaitLive() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return live_; });
  }
  // When `key` arrived, or InfinitePast after a 10 s wait.
  absl::Time WaitFor(const std::string& key) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10),
                      [&] { return last_key_ == key; })) {
      return absl::InfinitePast();
    }
    return arrived_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool live_ = false;
  std::string last_key_;
  absl::Time arrived_;
};

void Report(const char* what, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
  };
  std::printf("%-28s n=%zu p50=%.3f ms p90=%.3f ms p99=%.3f ms max=%.3f ms\n",
              what, ms.size(), at(0.5), at(0.9), at(0.99), ms.back());
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string url = absl::GetFlag(FLAGS_database_url);
  if (url.empty() && std::getenv("ROWGATE_TEST_DATABASE_URL") != nullptr) {
    url = std::getenv("ROWGATE_TEST_DATABASE_URL");
  }
  const int commits = absl::GetFlag(FLAGS_commits);
  if (url.empty() || commits < 1 || commits > 100000) {
    std::fprintf(stderr, "need --database_url and 1 <= --commits <= 100000\n");
    return 2;
  }
  try {
    pqxx::connection setup(url);
    pqxx::nontransaction(setup).exec(
        "DROP SCHEMA IF EXISTS rowgate_feed_bench CASCADE;"
        "DROP PUBLICATION IF EXISTS rowgate_feed_bench;"
        "CREATE SCHEMA rowgate_feed_bench;"
        "CREATE TABLE rowgate_feed_bench.items (id bigint PRIMARY KEY)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "setup: %s\n", e.what());
    return 1;
  }
  rowgate::storage::Connection conn(url);
  auto catalog =
      rowgate::storage::Catalog::Load(conn, "rowgate_feed_bench", "lastchange");
  if (!catalog.ok()) {
    std::fprintf(stderr, "%s\n", catalog.status().ToString().c_str());
    return 1;
  }
  LatestKey listener;
  rowgate::storage::ChangeFeed::Options options;
  options.database_url = url;
  options.publication = "rowgate_feed_bench";
  auto feed =
      rowgate::storage::ChangeFeed::Create(options, *catalog, &listener);
  if (!feed.ok()) {
    std::fprintf(stderr, "%s\n", feed.status().ToString().c_str());
    return 1;
  }
  (*feed)->Start();
  if (!listener.WaitLive()) {
    std::fprintf(stderr, "the feed did not go live in 30 s\n");
    return 1;
  }
  std::vector<double> from_call, from_return;
  try {
    pqxx::connection writer(url);
    const std::string sync = absl::GetFlag(FLAGS_synchronous_commit);
    if (!sync.empty()) {
      pqxx::nontransaction(writer).exec(
          absl::StrCat("SET synchronous_commit = ", writer.quote(sync)));
    }
    std::string sync_now = pqxx::nontransaction(writer)
                               .exec1("SHOW synchronous_commit")[0]
                               .c_str();
    std::printf("synchronous_commit=%s commits=%d\n", sync_now.c_str(),
                commits);
    for (int i = 1; i <= commits; ++i) {
      const std::string key = absl::StrCat(i);
      const absl::Time start = absl::Now();
      pqxx::nontransaction(writer).exec(absl::StrCat(
          "INSERT INTO rowgate_feed_bench.items VALUES (", key, ")"));
      const absl::Time returned = absl::Now();
      const absl::Time arrived = listener.WaitFor(key);
      if (arrived == absl::InfinitePast()) {
        std::fprintf(stderr, "commit %d did not arrive in 10 s\n", i);
        return 1;
      }
      from_call.push_back(absl::ToDoubleMilliseconds(arrived - start));
      from_return.push_back(absl::ToDoubleMilliseconds(
          std::max(arrived - returned, absl::ZeroDuration())));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  Report("commit call -> OnCommit", from_call);
  Report("commit return -> OnCommit", from_return);
  (*feed)->Stop();
  pqxx::connection cleanup(url);
  pqxx::nontransaction(cleanup).exec(
      "DROP SCHEMA rowgate_feed_bench CASCADE;"
      "DROP PUBLICATION rowgate_feed_bench");
  return 0;
}
