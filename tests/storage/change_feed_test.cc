// ChangeFeed against the real PostgreSQL of `make test` (wal_level =
// logical, deploy/local/pg.sh): changes committed over other connections
// reach the listener with the keys a lookup uses, in commit order, only
// after commit; the feed goes live, survives a terminated walsender, and
// leaves no slot behind when stopped or killed.
#include "storage/change_feed.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/base/config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/connection.h"
#include "tests/common/test_database.h"
#include "tests/storage/recording_listener.h"

namespace rowgate::storage {
namespace {

using ::rowgate::testing::ExecSql;
using ::rowgate::testing::FeedEvent;
using ::rowgate::testing::RecordingListener;
using ::rowgate::testing::TestDatabaseUrl;

constexpr char kPublication[] = "feedtest_pub";

// Waits (bounded) for a condition on the database that no event announces,
// such as a slot disappearing after its walsender's process died.
bool EventuallyTrue(const std::function<bool()>& check,
                    absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (check()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return check();
}

bool SlotExists(const std::string& slot) {
  return !ExecSql(absl::StrCat(
                      "SELECT 1 FROM pg_replication_slots WHERE slot_name = '",
                      slot, "'"))
              .empty();
}

// `url` with its user replaced, as a key=value string.
std::string UrlWithUser(const std::string& url, const std::string& user) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return "";
  }
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || std::string(o->keyword) == "user") continue;
    absl::StrAppend(&out, o->keyword, "='", o->val, "' ");
  }
  PQconninfoFree(options);
  return absl::StrCat(out, "user='", user, "'");
}

class ChangeFeedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(
        "DROP SCHEMA IF EXISTS feedtest CASCADE;"
        "DROP PUBLICATION IF EXISTS feedtest_pub;"
        "CREATE SCHEMA feedtest;"
        "CREATE TABLE feedtest.items (id bigint PRIMARY KEY, name text);"
        "CREATE TABLE feedtest.tags (id text PRIMARY KEY, v int);"
        "CREATE TABLE feedtest.docs (id uuid PRIMARY KEY, v int);"
        "CREATE TABLE feedtest.counters (id integer PRIMARY KEY, v int);"
        "CREATE TABLE feedtest.small (id smallint PRIMARY KEY, v int);"
        "CREATE TABLE feedtest.events (at timestamp PRIMARY KEY, v int);"
        "CREATE TABLE feedtest.unfollowed (id bigint PRIMARY KEY);");
  }

  void SetUp() override {
    Connection conn(TestDatabaseUrl());
    absl::StatusOr<std::shared_ptr<const Catalog>> catalog =
        Catalog::Load(conn, "feedtest", "lastchange");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *catalog;
  }

  ChangeFeed::Options Options() {
    ChangeFeed::Options options;
    options.database_url = TestDatabaseUrl();
    options.entities = {"items", "tags", "docs", "counters", "small", "events"};
    options.publication = kPublication;
    options.status_interval = absl::Milliseconds(200);
    return options;
  }

  // Creates and starts a feed and waits for its first OnLive.
  std::unique_ptr<ChangeFeed> StartLive(RecordingListener& listener) {
    absl::StatusOr<std::unique_ptr<ChangeFeed>> feed =
        ChangeFeed::Create(Options(), catalog_, &listener);
    EXPECT_TRUE(feed.ok()) << feed.status();
    if (!feed.ok()) return nullptr;
    (*feed)->Start();
    EXPECT_TRUE(listener.WaitForCount(FeedEvent::kLive, 1));
    return *std::move(feed);
  }

  // The commit events after the first OnLive, as DebugStrings.
  static std::vector<std::string> Commits(const RecordingListener& listener) {
    std::vector<std::string> out;
    for (const FeedEvent& e : listener.events()) {
      if (e.kind == FeedEvent::kCommit || e.kind == FeedEvent::kTruncate) {
        out.push_back(e.DebugString());
      }
    }
    return out;
  }

  std::shared_ptr<const Catalog> catalog_;
};

TEST_F(ChangeFeedTest, GoesLiveAfterStart) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  const std::vector<FeedEvent> events = listener.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].kind, FeedEvent::kLive);
  EXPECT_GT(events[0].lsn, 0u);
  const ChangeFeedStats stats = feed->Stats();
  EXPECT_TRUE(stats.connected);
  EXPECT_TRUE(stats.live);
  EXPECT_EQ(stats.reconnects, 0u);
  EXPECT_GE(stats.received_lsn, events[0].lsn);
  EXPECT_TRUE(absl::StartsWith(stats.slot_name, "rowgate_")) << stats.slot_name;
  EXPECT_LE(stats.slot_name.size(), 63u);
  // The publication holds the followed tables, not the others.
  EXPECT_EQ(ExecSql("SELECT string_agg(tablename, ',' ORDER BY tablename) "
                    "FROM pg_publication_tables WHERE pubname = "
                    "'feedtest_pub'"),
            (std::vector<std::vector<std::string>>{
                {"counters,docs,events,items,small,tags"}}));
}

TEST_F(ChangeFeedTest, ChangesArriveInCommitOrderWithCanonicalKeys) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  ExecSql("INSERT INTO feedtest.items VALUES (1, 'a')");
  ExecSql("UPDATE feedtest.items SET name = 'b' WHERE id = 1");
  ExecSql("DELETE FROM feedtest.items WHERE id = 1");
  ExecSql("INSERT INTO feedtest.items VALUES (10, 'k')");
  ExecSql("UPDATE feedtest.items SET id = 11 WHERE id = 10");  // key change
  ExecSql("INSERT INTO feedtest.tags VALUES ('Ab c ', 1)");
  ExecSql(
      "INSERT INTO feedtest.docs VALUES "
      "('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 1)");
  ExecSql("INSERT INTO feedtest.counters VALUES (-2147483648, 1)");
  ExecSql("INSERT INTO feedtest.small VALUES (32767, 1)");
  ExecSql("INSERT INTO feedtest.events VALUES ('2024-01-02 03:04:05.5', 1)");
  ExecSql("INSERT INTO feedtest.unfollowed VALUES (1)");
  ExecSql(
      "BEGIN; INSERT INTO feedtest.items VALUES (20, 'x');"
      "INSERT INTO feedtest.tags VALUES ('x', 2);"
      "UPDATE feedtest.items SET name = 'y' WHERE id = 20; COMMIT");
  ExecSql("BEGIN; INSERT INTO feedtest.items VALUES (30, 'gone'); ROLLBACK");
  ExecSql("DELETE FROM feedtest.docs");
  ExecSql("INSERT INTO feedtest.items VALUES (31, 'last')");
  const std::vector<std::string> want = {
      "commit(items:1)",
      "commit(items:1)",
      "commit(items:1)",
      "commit(items:10)",
      "commit(items:10,items:11)",
      "commit(tags:Ab c )",
      "commit(docs:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)",
      "commit(counters:-2147483648)",
      "commit(small:32767)",
      "commit(events:2024-01-02 03:04:05.5)",
      "commit(items:20,tags:x)",
      "commit(docs:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)",
      "commit(items:31)",
  };
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, want.size()))
      << ::testing::PrintToString(Commits(listener));
  EXPECT_EQ(Commits(listener), want);
  // Commit LSNs rise, and the stats follow the last one.
  Lsn last = 0;
  for (const FeedEvent& e : listener.events()) {
    if (e.kind != FeedEvent::kCommit) continue;
    EXPECT_GT(e.lsn, last);
    last = e.lsn;
  }
  // The feed counts a commit right after its listener returns, so the
  // stats may trail the last event by a moment (seen under ASan in CI).
  EXPECT_TRUE(EventuallyTrue([&] {
    return feed->Stats().transactions >= want.size();
  })) << feed->Stats().transactions;
  EXPECT_EQ(feed->Stats().applied_lsn, last);
  EXPECT_EQ(feed->Stats().transactions, want.size());
  ExecSql(
      "DELETE FROM feedtest.items; DELETE FROM feedtest.tags;"
      "DELETE FROM feedtest.counters; DELETE FROM feedtest.small;"
      "DELETE FROM feedtest.events; DELETE FROM feedtest.unfollowed");
}

// A transaction's changes wait for its commit: a later transaction that
// commits first is delivered first, and the open one's keys are not.
TEST_F(ChangeFeedTest, NothingArrivesBeforeCommit) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  pqxx::connection open(TestDatabaseUrl());
  pqxx::work txn(open);
  txn.exec0("INSERT INTO feedtest.items VALUES (40, 'open')");
  ExecSql("INSERT INTO feedtest.items VALUES (41, 'marker')");
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, 1));
  EXPECT_EQ(Commits(listener), (std::vector<std::string>{"commit(items:41)"}));
  txn.commit();
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, 2));
  EXPECT_EQ(Commits(listener),
            (std::vector<std::string>{"commit(items:41)", "commit(items:40)"}));
  ExecSql("DELETE FROM feedtest.items");
}

TEST_F(ChangeFeedTest, TruncateReachesTheListener) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  ExecSql("INSERT INTO feedtest.items VALUES (50, 'a')");
  ExecSql("TRUNCATE feedtest.items, feedtest.unfollowed");
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, 2));
  EXPECT_EQ(Commits(listener),
            (std::vector<std::string>{"commit(items:50)", "truncate(items)",
                                      "commit()"}));
}

TEST_F(ChangeFeedTest, TerminatedWalsenderInterruptsThenReconnects) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  const std::string slot = feed->Stats().slot_name;
  ASSERT_TRUE(SlotExists(slot));
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT count(*) FROM pg_stat_replication "
                                 "WHERE application_name = '",
                                 slot, "'")),
            (std::vector<std::vector<std::string>>{{"1"}}));
  ExecSql(absl::StrCat(
      "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
      "WHERE slot_name = '",
      slot, "'"));
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kInterrupted, 1));
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kLive, 2));
  const std::vector<FeedEvent> events = listener.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].kind, FeedEvent::kInterrupted);
  EXPECT_TRUE(absl::StrContains(events[1].items[0], "UNAVAILABLE"))
      << events[1].items[0];
  EXPECT_EQ(events[2].kind, FeedEvent::kLive);
  const ChangeFeedStats stats = feed->Stats();
  EXPECT_EQ(stats.reconnects, 1u);
  EXPECT_NE(stats.slot_name, slot);
  EXPECT_TRUE(EventuallyTrue([&] { return !SlotExists(slot); }));
  // The new stream delivers.
  ExecSql("INSERT INTO feedtest.items VALUES (60, 'after')");
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, 1));
  EXPECT_EQ(Commits(listener), (std::vector<std::string>{"commit(items:60)"}));
  ExecSql("DELETE FROM feedtest.items");
}

// An open transaction's WAL may be written only up to a page boundary
// inside one of its records, which the walsender cannot decode: a probe of
// the written position would wait for the rest forever. The feed nudges the
// server (a committed logical message writes and flushes it) instead of
// lagging into an interruption.
TEST_F(ChangeFeedTest, AnIdleTransactionsWalDoesNotStallTheFeed) {
  RecordingListener listener;
  ChangeFeed::Options options = Options();
  options.max_lag = absl::Seconds(5);  // nudges come after 1 s
  absl::StatusOr<std::unique_ptr<ChangeFeed>> created =
      ChangeFeed::Create(options, catalog_, &listener);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<ChangeFeed> feed = *std::move(created);
  feed->Start();
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kLive, 1));
  const long long nudges = testing::StatementCalls("pg_logical_emit_message");
  pqxx::connection open(TestDatabaseUrl());
  pqxx::work txn(open);
  // Some 64 kB of hardly compressible text: TOAST records over several WAL
  // pages, of which the WAL writer writes out only the completed ones, so
  // the written WAL most likely ends inside a record the walsender cannot
  // decode until the rest is written. Should it end between two records,
  // another insert tries again.
  bool nudged = false;
  for (int attempt = 0; attempt < 5 && !nudged; ++attempt) {
    txn.exec0(absl::StrCat(
        "INSERT INTO feedtest.items SELECT ", 95 + attempt,
        ", string_agg(md5(random()::text), '') FROM generate_series(1, 2000)"));
    nudged = EventuallyTrue(
        [&] {
          return testing::StatementCalls("pg_logical_emit_message") > nudges;
        },
        absl::Seconds(4));
  }
  EXPECT_TRUE(nudged);
  EXPECT_TRUE(EventuallyTrue([&] {
    const ChangeFeedStats stats = feed->Stats();
    return stats.lag == absl::ZeroDuration() && stats.lag_bytes == 0 &&
           stats.received_lsn >= stats.server_lsn;
  }));
  txn.abort();
  for (const FeedEvent& e : listener.events()) {
    EXPECT_NE(e.kind, FeedEvent::kInterrupted) << e.DebugString();
  }
  EXPECT_TRUE(feed->Stats().live);
}

// A table taken out of the publication would silently stop sending: the
// feed notices at its next probe, starts over and puts the table back.
TEST_F(ChangeFeedTest, APublicationThatLostATableIsMended) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  ExecSql("ALTER PUBLICATION feedtest_pub DROP TABLE feedtest.items");
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kInterrupted, 1));
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kLive, 2));
  const std::vector<FeedEvent> events = listener.events();
  ASSERT_GE(events.size(), 2u);
  EXPECT_TRUE(absl::StrContains(events[1].items[0], "publication"))
      << events[1].items[0];
  EXPECT_EQ(ExecSql("SELECT count(*) FROM pg_publication_tables WHERE "
                    "pubname = 'feedtest_pub' AND tablename = 'items'"),
            (std::vector<std::vector<std::string>>{{"1"}}));
  ExecSql("INSERT INTO feedtest.items VALUES (90, 'back')");
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, 1));
  EXPECT_EQ(Commits(listener), (std::vector<std::string>{"commit(items:90)"}));
  ExecSql("DELETE FROM feedtest.items");
}

// A restart ends every stream; the feed reconnects (with backoff) once
// PostgreSQL is back and delivers again.
TEST_F(ChangeFeedTest, SurvivesAPostgresRestart) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  const std::string pg = absl::StrCat("bash ", ROWGATE_PG_SH);
  ASSERT_EQ(std::system(absl::StrCat(pg, " stop && ", pg, " start").c_str()),
            0);
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kInterrupted, 1));
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kLive, 2, absl::Seconds(60)));
  EXPECT_GE(feed->Stats().reconnects, 1u);
  ExecSql("INSERT INTO feedtest.items VALUES (70, 'after restart')");
  ASSERT_TRUE(listener.WaitForCount(FeedEvent::kCommit, 1));
  EXPECT_EQ(Commits(listener), (std::vector<std::string>{"commit(items:70)"}));
  ExecSql("DELETE FROM feedtest.items");
}

TEST_F(ChangeFeedTest, StopEndsTheStreamAndDropsTheSlot) {
  RecordingListener listener;
  std::unique_ptr<ChangeFeed> feed = StartLive(listener);
  ASSERT_NE(feed, nullptr);
  const std::string slot = feed->Stats().slot_name;
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT temporary, active FROM "
                                 "pg_replication_slots WHERE slot_name = '",
                                 slot, "'")),
            (std::vector<std::vector<std::string>>{{"t", "t"}}));
  feed->Stop();
  // Stop closed the connection; the server drops the slot as its
  // walsender exits, which Stop does not wait for.
  EXPECT_TRUE(EventuallyTrue([&] { return !SlotExists(slot); }));
  const std::vector<FeedEvent> events = listener.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, FeedEvent::kInterrupted);
  EXPECT_TRUE(absl::StrContains(events[1].items[0], "CANCELLED"));
  EXPECT_FALSE(feed->Stats().connected);
  feed->Stop();  // idempotent
  // Destroyed without Stop, and never started: no slot either.
  RecordingListener other;
  absl::StatusOr<std::unique_ptr<ChangeFeed>> unstarted =
      ChangeFeed::Create(Options(), catalog_, &other);
  ASSERT_TRUE(unstarted.ok()) << unstarted.status();
  const std::string unstarted_slot = (*unstarted)->Stats().slot_name;
  unstarted->reset();
  EXPECT_TRUE(other.events().empty());
  if (!unstarted_slot.empty()) {
    EXPECT_TRUE(EventuallyTrue([&] { return !SlotExists(unstarted_slot); }));
  }
  std::unique_ptr<ChangeFeed> destroyed = StartLive(other);
  ASSERT_NE(destroyed, nullptr);
  const std::string destroyed_slot = destroyed->Stats().slot_name;
  destroyed.reset();
  EXPECT_TRUE(EventuallyTrue([&] { return !SlotExists(destroyed_slot); }));
}

// A rowgate killed with SIGKILL runs no destructor: its connection closes
// with the process, and PostgreSQL drops the temporary slot.
TEST_F(ChangeFeedTest, KilledProcessLeavesNoSlot) {
#ifdef ABSL_HAVE_THREAD_SANITIZER
  GTEST_SKIP() << "a forked child of a ThreadSanitizer process hangs";
#endif
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    alarm(60);  // bounded, should the parent die
    RecordingListener listener;
    absl::StatusOr<std::unique_ptr<ChangeFeed>> feed =
        ChangeFeed::Create(Options(), catalog_, &listener);
    if (!feed.ok()) _exit(1);
    (*feed)->Start();
    if (!listener.WaitForCount(FeedEvent::kLive, 1)) _exit(2);
    const std::string slot = (*feed)->Stats().slot_name + "\n";
    if (write(fds[1], slot.data(), slot.size()) < 0) _exit(3);
    for (;;) pause();
  }
  close(fds[1]);
  std::string slot;
  char c;
  while (read(fds[0], &c, 1) == 1 && c != '\n') slot.push_back(c);
  close(fds[0]);
  if (slot.empty()) {
    int status = 0;
    waitpid(child, &status, 0);
    FAIL() << "the child could not create its feed: wait status " << status;
  }
  EXPECT_EQ(ExecSql(absl::StrCat("SELECT temporary, active FROM "
                                 "pg_replication_slots WHERE slot_name = '",
                                 slot, "'")),
            (std::vector<std::vector<std::string>>{{"t", "t"}}));
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(EventuallyTrue([&] { return !SlotExists(slot); }));
}

TEST_F(ChangeFeedTest, StartupRefusesWhatTheDatabaseDoesNotAllow) {
  RecordingListener listener;
  ChangeFeed::Options options = Options();
  options.entities = {"nosuch"};
  absl::StatusOr<std::unique_ptr<ChangeFeed>> feed =
      ChangeFeed::Create(options, catalog_, &listener);
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(feed.status().message(), "nosuch"));

  options = Options();
  options.publication = "Bad-Name";
  feed = ChangeFeed::Create(options, catalog_, &listener);
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kInvalidArgument);

  // A role without REPLICATION.
  ExecSql(
      "DROP ROLE IF EXISTS feedtest_norepl;"
      "CREATE ROLE feedtest_norepl LOGIN NOREPLICATION");
  options = Options();
  options.database_url = UrlWithUser(TestDatabaseUrl(), "feedtest_norepl");
  feed = ChangeFeed::Create(options, catalog_, &listener);
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kFailedPrecondition)
      << feed.status();
  EXPECT_TRUE(absl::StrContains(feed.status().message(), "REPLICATION"))
      << feed.status();

  // With REPLICATION but not owning the tables: the publication cannot be
  // extended (a fresh publication name, so it must be created).
  ExecSql(
      "ALTER ROLE feedtest_norepl REPLICATION;"
      "GRANT USAGE ON SCHEMA feedtest TO feedtest_norepl");
  options.publication = "feedtest_pub_denied";
  feed = ChangeFeed::Create(options, catalog_, &listener);
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kFailedPrecondition)
      << feed.status();
  EXPECT_TRUE(absl::StrContains(feed.status().message(), "CREATE PUBLICATION"))
      << feed.status();
  ExecSql("DROP OWNED BY feedtest_norepl; DROP ROLE feedtest_norepl");

  // A table with REPLICA IDENTITY NOTHING.
  ExecSql("ALTER TABLE feedtest.small REPLICA IDENTITY NOTHING");
  feed = ChangeFeed::Create(Options(), catalog_, &listener);
  ExecSql("ALTER TABLE feedtest.small REPLICA IDENTITY DEFAULT");
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kFailedPrecondition)
      << feed.status();
  EXPECT_TRUE(absl::StrContains(feed.status().message(), "REPLICA IDENTITY"))
      << feed.status();
  EXPECT_TRUE(listener.events().empty());
}

// PostgreSQL makes a slot only once the transactions open at its creation
// have ended: an idle transaction holds start-up to its bound, and the
// error says where to look.
TEST_F(ChangeFeedTest, StartupNamesTheOpenTransactionThatHoldsUpTheSlot) {
  pqxx::connection open(TestDatabaseUrl());
  pqxx::work txn(open);
  txn.exec0("INSERT INTO feedtest.items VALUES (80, 'open')");
  RecordingListener listener;
  ChangeFeed::Options options = Options();
  options.timeouts.statement = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<ChangeFeed>> feed =
      ChangeFeed::Create(options, catalog_, &listener);
  txn.abort();
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kUnavailable)
      << feed.status();
  EXPECT_TRUE(absl::StrContains(feed.status().message(), "pg_stat_activity"))
      << feed.status();
}

// Every replication slot taken: start-up says which setting to raise.
TEST_F(ChangeFeedTest, StartupNamesTheFixWhenSlotsRunOut) {
  const int free_slots = std::stoi(
      ExecSql("SELECT current_setting('max_replication_slots')::int - "
              "count(*) FROM pg_replication_slots")[0][0]);
  for (int i = 0; i < free_slots; ++i) {
    ExecSql(
        absl::StrCat("SELECT pg_create_physical_replication_slot("
                     "'feedtest_fill_",
                     i, "')"));
  }
  RecordingListener listener;
  absl::StatusOr<std::unique_ptr<ChangeFeed>> feed =
      ChangeFeed::Create(Options(), catalog_, &listener);
  ExecSql(
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
      "WHERE slot_name LIKE 'feedtest_fill_%'");
  EXPECT_EQ(feed.status().code(), absl::StatusCode::kFailedPrecondition)
      << feed.status();
  EXPECT_TRUE(
      absl::StrContains(feed.status().message(), "max_replication_slots"))
      << feed.status();
}

}  // namespace
}  // namespace rowgate::storage
