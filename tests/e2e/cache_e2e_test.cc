// End-to-end: the row cache (--cache_entities) against a real rowgate and
// PostgreSQL's logical replication. Writes through rowgate are read back at
// once; writes by SQL become visible within a bounded wait; TRUNCATE, a
// terminated walsender and AdminService.ClearCache all end with correct
// answers; cached answers equal an uncached rowgate's byte for byte.
//
// The tests use a schema of their own (cache_e2e), so TRUNCATE touches
// nobody else's rows.
#include <gmock/gmock.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSchema[] = "cache_e2e";

// Serialized with map entries sorted, so equal answers give equal bytes.
std::string Bytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

v1::CacheStats CacheStats(Client& client) {
  v1::CacheStats stats;
  auto context = NewContext();
  grpc::Status status =
      client.admin()->GetCacheStats(context.get(), {}, &stats);
  EXPECT_THAT(status, IsOk());
  return stats;
}

// Waits (bounded) until the cache is live, i.e. the feed vouches for it.
bool AwaitLive(Client& client, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (CacheStats(client).live()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// The "name" of `entity`'s row at `key`, read through rowgate.
std::string NameAt(Client& client, const std::string& entity, v1::Value key) {
  v1::BatchGetResponse response;
  grpc::Status status =
      client.BatchGet(BatchGetRequest(entity, {std::move(key)}), &response);
  EXPECT_THAT(status, IsOk());
  if (!status.ok() || response.results_size() != 1) return "<error>";
  if (!response.results(0).found()) return "<missing>";
  return response.results(0).rows(0).fields().at("name").string_value();
}

std::string NameOf(Client& client, int64_t id) {
  return NameAt(client, "items", Int(id));
}

// Polls rowgate until `id` reads as `name`, up to `timeout`; returns how
// long it took, or nullopt if it never did.
std::optional<absl::Duration> AwaitName(Client& client, int64_t id,
                                        const std::string& name,
                                        absl::Duration timeout) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < timeout) {
    if (NameOf(client, id) == name) return absl::Now() - start;
    absl::SleepFor(absl::Microseconds(200));
  }
  return std::nullopt;
}

// Polls rowgate until `entity`'s row at `key` reads as `name`, up to
// `timeout`.
bool AwaitNameAt(Client& client, const std::string& entity,
                 const v1::Value& key, const std::string& name,
                 absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (NameAt(client, entity, key) == name) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// Polls until `server` logged that it now caches a table it was not
// caching (or no longer in that shape) and the cache is live and caches
// `entity`, up to 20 s.
bool AwaitNowCached(Client& client, const RowgateProcess& server,
                    const std::string& entity) {
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (absl::Now() < give_up) {
    const v1::CacheStats stats = CacheStats(client);
    if (absl::StrContains(server.OutputTail(), "entity now cached") &&
        stats.live() && absl::c_linear_search(stats.entities(), entity)) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// `entity`'s row 1, named `name` now, is answered from the cache (a second
// read is a hit), and an external UPDATE renaming it to `next` is seen.
void ExpectRowOneCachedAndFollowed(Client& client, const std::string& entity,
                                   const std::string& name,
                                   const std::string& next) {
  EXPECT_EQ(NameAt(client, entity, Int(1)), name);
  const uint64_t hits = CacheStats(client).hits();
  EXPECT_EQ(NameAt(client, entity, Int(1)), name);
  EXPECT_EQ(CacheStats(client).hits(), hits + 1);
  ExecSql(absl::StrCat("UPDATE ", kSchema, ".", entity, " SET name = '", next,
                       "' WHERE id = 1"));
  EXPECT_TRUE(AwaitNameAt(client, entity, Int(1), next, absl::Seconds(10)));
}

class CacheTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    ExecSql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
    ExecSql(absl::StrCat("CREATE SCHEMA ", kSchema));
    ExecSql(absl::StrCat(
        "CREATE TABLE ", kSchema,
        ".items (id bigint PRIMARY KEY, name varchar, note text, n integer, "
        "data bytea, at timestamptz, lastchange timestamp DEFAULT "
        "timezone('UTC', now()), owner bigint)"));
    ExecSql(absl::StrCat("CREATE INDEX ON ", kSchema, ".items (owner)"));
    ExecSql(absl::StrCat(
        "INSERT INTO ", kSchema,
        ".items (id, name, note, n, data, at, owner) SELECT i, 'item' || i, "
        "repeat('x', i), i * 10, '\\x0102'::bytea, '2026-01-02 03:04:05+00', "
        "i % 3 FROM generate_series(1, 100) i"));
    cached_ = RowgateProcess::Start({absl::StrCat("--schema=", kSchema),
                                     "--cache_entities=items",
                                     "--cache_max_lag_ms=2000"})
                  .release();
  }
  static void TearDownTestSuite() {
    delete cached_;
    cached_ = nullptr;
    ExecSql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
  }

 protected:
  void SetUp() override {
    ASSERT_NE(cached_, nullptr);
    client_ = std::make_unique<Client>(cached_->NewChannel());
    ASSERT_TRUE(AwaitLive(*client_)) << cached_->OutputTail();
  }
  Client& client() { return *client_; }

  static inline RowgateProcess* cached_ = nullptr;
  std::unique_ptr<Client> client_;
};

// A write through rowgate is seen by the very next read through rowgate,
// for updates, deletes and inserts, over and over (no wait, no retry).
TEST_F(CacheTest, ReadYourWritesThroughRowgate) {
  v1::InsertResponse inserted;
  v1::InsertRequest insert;
  insert.set_entity("items");
  *insert.add_rows() = MakeRow({{"id", Int(1001)}, {"name", Str("fresh")}});
  // Known missing first: the insert must replace that answer.
  EXPECT_EQ(NameOf(client(), 1001), "<missing>");
  EXPECT_EQ(NameOf(client(), 1001), "<missing>");
  ASSERT_THAT(client().Insert(insert, &inserted), IsOk());
  EXPECT_EQ(NameOf(client(), 1001), "fresh");
  v1::Row row = inserted.rows(0);
  for (int i = 0; i < 30; ++i) {
    v1::UpdateRequest update;
    update.set_entity("items");
    *update.mutable_row() = MakeRow({{"id", Int(1001)},
                                     {"name", Str(absl::StrCat("v", i))},
                                     {"lastchange", Field(row, "lastchange")}});
    v1::UpdateResponse updated;
    ASSERT_THAT(client().Update(update, &updated), IsOk());
    row = updated.row();
    ASSERT_EQ(NameOf(client(), 1001), absl::StrCat("v", i));
  }
  v1::DeleteRequest del;
  del.set_entity("items");
  *del.add_keys() = Int(1001);
  v1::DeleteResponse deleted;
  ASSERT_THAT(client().Delete(del, &deleted), IsOk());
  EXPECT_EQ(NameOf(client(), 1001), "<missing>");
  EXPECT_GT(CacheStats(client()).hits(), 0u);
}

// Read-your-writes while other clients keep reading (and filling) the same
// key: a fill that read the old row just before the write must not put it
// back after the write's reply.
TEST_F(CacheTest, ReadYourWritesUnderConcurrentReaders) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      Client reader(cached_->NewChannel());
      for (int i = 0; i < 100000 && !stop.load(); ++i) {
        v1::BatchGetResponse response;
        reader.BatchGet(BatchGetRequest("items", {Int(40), Int(41)}),
                        &response);
      }
    });
  }
  v1::Row row = client().MustGet("items", 40);
  for (int i = 0; i < 100; ++i) {
    v1::UpdateRequest update;
    update.set_entity("items");
    const std::string name = absl::StrCat("rw", i);
    *update.mutable_row() = MakeRow({{"id", Int(40)},
                                     {"name", Str(name)},
                                     {"lastchange", Field(row, "lastchange")}});
    v1::UpdateResponse updated;
    ASSERT_THAT(client().Update(update, &updated), IsOk());
    row = updated.row();
    ASSERT_EQ(NameOf(client(), 40), name) << "update " << i;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(CacheStats(client()).hits(), 100u);
}

// A failed write forgets its key too: an update refused for a stale
// version leaves the cache answering what the database holds.
TEST_F(CacheTest, FailedWriteLeavesTheCacheCorrect) {
  EXPECT_EQ(NameOf(client(), 50), "item50");
  v1::UpdateRequest update;
  update.set_entity("items");
  *update.mutable_row() = MakeRow(
      {{"id", Int(50)}, {"name", Str("never")}, {"lastchange", Null()}});
  v1::UpdateResponse updated;
  EXPECT_THAT(client().Update(update, &updated),
              StatusIs(grpc::StatusCode::ABORTED));
  EXPECT_EQ(NameOf(client(), 50), "item50");
}

// A commit made with SQL, not through rowgate, becomes visible through
// rowgate within a bounded wait; the time it took is printed (README).
TEST_F(CacheTest, ExternalUpdateBecomesVisible) {
  std::vector<double> lags_ms;
  for (int i = 0; i < 100; ++i) {
    const int64_t id = 10 + i % 5;
    NameOf(client(), id);  // cached now
    const std::string name = absl::StrCat("external", i);
    ExecSql(absl::StrCat("UPDATE ", kSchema, ".items SET name = '", name,
                         "' WHERE id = ", id));
    std::optional<absl::Duration> took =
        AwaitName(client(), id, name, absl::Seconds(10));
    ASSERT_TRUE(took.has_value()) << "update " << i << " never seen";
    lags_ms.push_back(absl::ToDoubleMilliseconds(*took));
    // And it stays seen (no stale row came back).
    ASSERT_EQ(NameOf(client(), id), name);
  }
  std::sort(lags_ms.begin(), lags_ms.end());
  std::cout << "visibility lag of an SQL UPDATE through rowgate: p50 "
            << lags_ms[lags_ms.size() / 2] << " ms, p99 "
            << lags_ms[lags_ms.size() * 99 / 100] << " ms, max "
            << lags_ms.back() << " ms over " << lags_ms.size() << "\n";
  // Inserts and deletes by SQL as well (known-missing is invalidated).
  EXPECT_EQ(NameOf(client(), 2001), "<missing>");
  ExecSql(absl::StrCat("INSERT INTO ", kSchema,
                       ".items (id, name) VALUES (2001, 'by sql')"));
  EXPECT_TRUE(AwaitName(client(), 2001, "by sql", absl::Seconds(10)));
  ExecSql(absl::StrCat("DELETE FROM ", kSchema, ".items WHERE id = 2001"));
  EXPECT_TRUE(AwaitName(client(), 2001, "<missing>", absl::Seconds(10)));
}

// TRUNCATE of a cached table: every cached row of it is forgotten.
TEST_F(CacheTest, TruncateEndsWithACorrectCache) {
  ExecSql(absl::StrCat("CREATE TABLE IF NOT EXISTS ", kSchema,
                       ".scratch (LIKE ", kSchema, ".items)"));
  // The cached table itself: copy its rows aside, truncate, restore.
  ExecSql(absl::StrCat("INSERT INTO ", kSchema, ".scratch SELECT * FROM ",
                       kSchema, ".items"));
  for (int64_t id = 60; id < 70; ++id) NameOf(client(), id);
  ExecSql(absl::StrCat("TRUNCATE ", kSchema, ".items"));
  EXPECT_TRUE(AwaitName(client(), 65, "<missing>", absl::Seconds(10)));
  for (int64_t id = 60; id < 70; ++id) {
    EXPECT_EQ(NameOf(client(), id), "<missing>") << id;
  }
  ExecSql(absl::StrCat("INSERT INTO ", kSchema, ".items SELECT * FROM ",
                       kSchema, ".scratch"));
  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".scratch"));
  for (int64_t id = 60; id < 70; ++id) {
    EXPECT_TRUE(
        AwaitName(client(), id, absl::StrCat("item", id), absl::Seconds(10)))
        << id;
  }
}

// The walsender is terminated: the feed reconnects (a new slot), the cache
// stops answering meanwhile and forgets what it could not follow; a change
// made while it was down is seen, and the cache is live again.
TEST_F(CacheTest, TerminatedWalsenderEndsWithACorrectCache) {
  for (int64_t id = 20; id < 25; ++id) NameOf(client(), id);
  const uint64_t interruptions = CacheStats(client()).interruptions();
  auto killed = ExecSql(
      "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
      "WHERE slot_name LIKE 'rowgate%' AND active_pid IS NOT NULL");
  ASSERT_FALSE(killed.empty()) << "no rowgate slot is active";
  ExecSql(absl::StrCat("UPDATE ", kSchema,
                       ".items SET name = 'while down' WHERE id = 22"));
  EXPECT_TRUE(AwaitName(client(), 22, "while down", absl::Seconds(15)));
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (CacheStats(client()).interruptions() == interruptions &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_GT(CacheStats(client()).interruptions(), interruptions);
  ASSERT_TRUE(AwaitLive(client()));
  EXPECT_EQ(NameOf(client(), 22), "while down");
  EXPECT_EQ(NameOf(client(), 22), "while down");
  ExecSql(absl::StrCat("UPDATE ", kSchema,
                       ".items SET name = 'after' WHERE id = 22"));
  EXPECT_TRUE(AwaitName(client(), 22, "after", absl::Seconds(10)));
}

// ClearCache: given keys, one entity, everything; bad requests are named.
TEST_F(CacheTest, AdminClearCache) {
  NameOf(client(), 30);
  NameOf(client(), 31);
  const uint64_t misses = CacheStats(client()).misses();
  NameOf(client(), 30);
  EXPECT_EQ(CacheStats(client()).misses(), misses);  // a hit

  auto clear = [&](v1::ClearCacheRequest request) {
    v1::ClearCacheResponse response;
    auto context = NewContext();
    return client().admin()->ClearCache(context.get(), request, &response);
  };
  v1::ClearCacheRequest keys;
  keys.set_entity("items");
  *keys.add_keys() = Int(30);
  ASSERT_THAT(clear(keys), IsOk());
  NameOf(client(), 30);
  EXPECT_EQ(CacheStats(client()).misses(), misses + 1);
  NameOf(client(), 31);  // still cached
  EXPECT_EQ(CacheStats(client()).misses(), misses + 1);

  v1::ClearCacheRequest entity;
  entity.set_entity("items");
  ASSERT_THAT(clear(entity), IsOk());
  NameOf(client(), 31);
  EXPECT_EQ(CacheStats(client()).misses(), misses + 2);
  ASSERT_THAT(clear(v1::ClearCacheRequest()), IsOk());
  EXPECT_EQ(CacheStats(client()).entries(), 0u);

  v1::ClearCacheRequest unknown;
  unknown.set_entity("nope");
  EXPECT_THAT(clear(unknown),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("nope")));
  v1::ClearCacheRequest keys_only;
  *keys_only.add_keys() = Int(1);
  EXPECT_THAT(clear(keys_only), StatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                                         HasSubstr("no entity")));
  v1::ClearCacheRequest wrong_kind = keys;
  *wrong_kind.mutable_keys(0) = Str("abc");
  EXPECT_THAT(clear(wrong_kind),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("key 0")));
}

// Cached answers (hits, partial hits, missing keys, projections, rows
// primed by Page and by key_column lookups) equal an uncached rowgate's
// answers byte for byte.
// Lookups of every shape (projections, lists, duplicates, missing keys,
// partly cached), each three times (a miss, then hits): `cached` answers
// them byte for byte as `uncached` does.
void ExpectAnswersEqualUncached(Client& cached, Client& uncached) {
  // Prime by Page and by a one-to-many lookup.
  v1::PageRequest page;
  page.set_entity("items");
  page.set_page_size(40);
  v1::PageResponse paged;
  ASSERT_THAT(cached.Page(page, &paged), IsOk());
  v1::BatchGetResponse by_owner;
  ASSERT_THAT(
      cached.BatchGet(BatchGetRequest("items", {Int(1)}, "owner"), &by_owner),
      IsOk());
  v1::BatchGetRequest as_lists =
      BatchGetRequest("items", {Int(8), Int(999999), Int(9)}, "", {"n", "at"});
  as_lists.set_row_format(v1::ROW_FORMAT_LIST);
  const std::vector<v1::BatchGetRequest> requests = {
      as_lists,
      BatchGetRequest("items", {Int(3), Int(4), Int(3), Int(999999)}),
      BatchGetRequest("items", {Int(5), Int(6)}, "", {"name", "data", "at"}),
      BatchGetRequest("items", {Int(7), Int(55), Int(88)}, "", {"note"}),
      BatchGetRequest("items", {Int(999999), Int(98)}),
      // Primed by the key_column lookup above (owner 1: ids 1, 4, 7, ...).
      BatchGetRequest("items", {Int(97), Int(94), Int(91)}, "", {"id", "n"}),
      // Partly cached (the Page primed 1 to 40): hits and misses mixed.
      BatchGetRequest("items", {Int(2), Int(77), Int(10), Int(78)}),
  };
  for (int round = 0; round < 3; ++round) {  // miss, then hits
    for (const v1::BatchGetRequest& request : requests) {
      v1::BatchGetResponse a, b;
      ASSERT_THAT(cached.BatchGet(request, &a), IsOk());
      ASSERT_THAT(uncached.BatchGet(request, &b), IsOk());
      EXPECT_TRUE(Bytes(a) == Bytes(b))
          << request.ShortDebugString()
          << "\ncached:   " << a.ShortDebugString().substr(0, 2000)
          << "\nuncached: " << b.ShortDebugString().substr(0, 2000);
    }
  }
  EXPECT_GT(CacheStats(cached).hits(), 10u);
  EXPECT_FALSE(CacheStats(uncached).enabled());
}

TEST_F(CacheTest, CachedAnswersEqualTheDatabasesByteForByte) {
  std::unique_ptr<RowgateProcess> plain =
      RowgateProcess::Start({absl::StrCat("--schema=", kSchema)});
  ASSERT_NE(plain, nullptr);
  Client uncached(plain->NewChannel());
  ExpectAnswersEqualUncached(client(), uncached);
}

// The same without each row's encoding kept (hits build their rows again).
TEST_F(CacheTest, RowsOnlyCacheAnswersEqualTheDatabasesByteForByte) {
  std::unique_ptr<RowgateProcess> plain =
      RowgateProcess::Start({absl::StrCat("--schema=", kSchema)});
  ASSERT_NE(plain, nullptr);
  std::unique_ptr<RowgateProcess> rows_only = RowgateProcess::Start(
      {absl::StrCat("--schema=", kSchema), "--cache_entities=items",
       "--cache_encoded_rows=false", "--cache_max_lag_ms=2000"});
  ASSERT_NE(rows_only, nullptr);
  Client uncached(plain->NewChannel());
  Client cached(rows_only->NewChannel());
  ASSERT_TRUE(AwaitLive(cached)) << rows_only->OutputTail();
  ExpectAnswersEqualUncached(cached, uncached);
}

// A database role without the REPLICATION attribute: rowgate says why at
// start and serves without a cache.
TEST(CacheStartupTest, WithoutReplicationRightsRunsWithoutACache) {
  ExecSql(
      "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
      "'cache_norepl') THEN CREATE ROLE cache_norepl LOGIN; END IF; END $$");
  ExecSql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO cache_norepl");
  std::string url = ::rowgate::testing::TestDatabaseUrl();
  const size_t at = url.find("postgres@");
  ASSERT_NE(at, std::string::npos) << url;
  url.replace(at, std::string("postgres@").size(), "cache_norepl@");
  std::unique_ptr<RowgateProcess> server = RowgateProcess::Start(
      {absl::StrCat("--database_url=", url), "--cache_entities=users"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  EXPECT_FALSE(CacheStats(client).enabled());
  v1::BatchGetResponse response;
  EXPECT_THAT(client.BatchGet(BatchGetRequest("users", {Int(1)}), &response),
              IsOk());
  EXPECT_THAT(server->OutputTail(), HasSubstr("row cache off"));
}

// A char(n) key is asked as 'AB' and stored as 'AB    ': the change feed
// names the stored spelling, so a cached 'AB' would never be invalidated.
// Such entities are left out of the cache (with a warning naming them), and
// an external update is seen at once.
TEST_F(CacheTest, PaddedTextKeysAreNotCachedSoExternalUpdatesAreSeen) {
  ExecSql(absl::StrCat("CREATE TABLE ", kSchema,
                       ".padded (code char(6) PRIMARY KEY, name varchar)"));
  ExecSql(
      absl::StrCat("INSERT INTO ", kSchema, ".padded VALUES ('AB', 'first')"));
  auto server = RowgateProcess::Start(
      {absl::StrCat("--schema=", kSchema), "--cache_entities=*"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(AwaitLive(client)) << server->OutputTail();
  auto name_of_ab = [&client] { return NameAt(client, "padded", Str("AB")); };
  EXPECT_EQ(name_of_ab(), "first");
  EXPECT_EQ(name_of_ab(), "first");  // would be a hit, were it cached
  ExecSql(absl::StrCat("UPDATE ", kSchema,
                       ".padded SET name = 'second' WHERE code = 'AB'"));
  EXPECT_EQ(name_of_ab(), "second");
  EXPECT_THAT(server->OutputTail(), HasSubstr("entity not cached"));
  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".padded"));
}

// A migration while rowgate runs: the table stays cached, in its new shape.
// Before, the cache was tied to the start-up catalog's entities, so after
// the reload no lookup was cached again (never stale, but the hit ratio
// silently fell to 0). The change feed still reaches the table afterwards.
TEST_F(CacheTest, MigratedTableIsCachedInItsNewShape) {
  ExecSql(absl::StrCat("CREATE TABLE ", kSchema,
                       ".migrating (id bigint PRIMARY KEY, name varchar)"));
  ExecSql(absl::StrCat("INSERT INTO ", kSchema,
                       ".migrating VALUES (1, 'one'), (2, 'two')"));
  auto server = RowgateProcess::Start({absl::StrCat("--schema=", kSchema),
                                       "--cache_entities=migrating",
                                       "--schema_poll_interval_ms=100"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(AwaitLive(client)) << server->OutputTail();
  auto read = [&client](int64_t id) {
    v1::BatchGetResponse response;
    EXPECT_THAT(
        client.BatchGet(BatchGetRequest("migrating", {Int(id)}), &response),
        IsOk());
    return response;
  };
  read(1);
  read(1);
  ASSERT_GT(CacheStats(client).hits(), 0u);

  ExecSql(absl::StrCat("ALTER TABLE ", kSchema,
                       ".migrating ADD COLUMN extra integer DEFAULT 5"));
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  bool reshaped = false;
  while (!reshaped && absl::Now() < give_up) {
    const v1::BatchGetResponse r = read(1);
    reshaped = r.results_size() == 1 && r.results(0).found() &&
               r.results(0).rows(0).fields().contains("extra");
    if (!reshaped) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(reshaped) << server->OutputTail();

  // Cached again, in the new shape: the second read of a key is a hit and
  // answers the new column.
  read(2);
  const uint64_t hits = CacheStats(client).hits();
  const v1::BatchGetResponse hit = read(2);
  EXPECT_EQ(CacheStats(client).hits(), hits + 1);
  ASSERT_EQ(hit.results_size(), 1);
  ASSERT_TRUE(hit.results(0).found());
  EXPECT_EQ(hit.results(0).rows(0).fields().at("extra").int64_value(), 5);
  EXPECT_THAT(CacheStats(client).entities(), ElementsAre("migrating"));

  // The feed still invalidates the table's keys.
  ExecSql(absl::StrCat("UPDATE ", kSchema,
                       ".migrating SET name = 'deux' WHERE id = 2"));
  bool seen = false;
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (!seen && absl::Now() < until) {
    const v1::BatchGetResponse r = read(2);
    seen = r.results_size() == 1 && r.results(0).found() &&
           r.results(0).rows(0).fields().at("name").string_value() == "deux";
    if (!seen) absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(seen);
  server.reset();
  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".migrating"));
}

// A key with a nondeterministic (case-insensitive) collation: 'ab' finds
// the stored 'AB', but the change feed names 'AB', so a cached 'ab' would
// never be invalidated. Such entities are left out of the cache, with a
// warning naming the reason, and an external update is seen at once.
TEST_F(CacheTest, NondeterministicCollationKeysAreNotCached) {
  ExecSql(absl::StrCat("CREATE COLLATION IF NOT EXISTS ", kSchema,
                       ".caseless (provider = icu, locale = "
                       "'und-u-ks-level2', deterministic = false)"));
  ExecSql(absl::StrCat("CREATE TABLE ", kSchema, ".caseless_keyed (code text ",
                       "COLLATE ", kSchema,
                       ".caseless PRIMARY KEY, name varchar)"));
  ExecSql(absl::StrCat("INSERT INTO ", kSchema,
                       ".caseless_keyed VALUES ('AB', 'first')"));
  auto server = RowgateProcess::Start(
      {absl::StrCat("--schema=", kSchema), "--cache_entities=*"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(AwaitLive(client)) << server->OutputTail();
  auto name_of_ab = [&client] {
    return NameAt(client, "caseless_keyed", Str("ab"));
  };
  EXPECT_EQ(name_of_ab(), "first");
  EXPECT_EQ(name_of_ab(), "first");  // would be a hit, were it cached
  ExecSql(
      absl::StrCat("UPDATE ", kSchema,
                   ".caseless_keyed SET name = 'second' WHERE code = 'AB'"));
  EXPECT_EQ(name_of_ab(), "second");
  EXPECT_THAT(server->OutputTail(), HasSubstr("nondeterministic collation"));
  EXPECT_THAT(CacheStats(client).entities(),
              ::testing::Not(::testing::Contains("caseless_keyed")));
  server.reset();
  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".caseless_keyed"));
}

// A cached table dropped while rowgate runs: the other tables stay cached
// and the change feed goes on. (Its probe and its reconnects used to name
// the dropped table, fail on it, and leave the whole cache off.)
TEST_F(CacheTest, DroppedTableLeavesTheOthersCached) {
  ExecSql(absl::StrCat("CREATE TABLE ", kSchema,
                       ".doomed (id bigint PRIMARY KEY, name varchar)"));
  auto server = RowgateProcess::Start(
      {absl::StrCat("--schema=", kSchema), "--cache_entities=*",
       "--schema_poll_interval_ms=100", "--cache_max_lag_ms=2000"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(AwaitLive(client)) << server->OutputTail();
  EXPECT_THAT(CacheStats(client).entities(), ::testing::Contains("doomed"));

  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".doomed"));
  // Several probes (one a second) and a reconnect's worth of time.
  absl::SleepFor(absl::Seconds(3));
  ASSERT_TRUE(AwaitLive(client, absl::Seconds(10))) << server->OutputTail();
  EXPECT_THAT(CacheStats(client).entities(),
              ::testing::Not(::testing::Contains("doomed")));
  NameOf(client, 7);
  const uint64_t hits = CacheStats(client).hits();
  NameOf(client, 7);
  EXPECT_EQ(CacheStats(client).hits(), hits + 1);
  ExecSql(absl::StrCat("UPDATE ", kSchema,
                       ".items SET name = 'after the drop' WHERE id = 7"));
  EXPECT_TRUE(AwaitName(client, 7, "after the drop", absl::Seconds(10)))
      << server->OutputTail();
}

// Under --cache_entities=*, a table created while rowgate runs is cached
// once the schema poller has seen it, without a restart: the change feed
// adds it to its publication and moves to a new slot. Its rows are then
// answered from the cache, and external writes to it are seen.
TEST_F(CacheTest, TableCreatedUnderStarIsCachedWithoutRestart) {
  auto server = RowgateProcess::Start(
      {absl::StrCat("--schema=", kSchema), "--cache_entities=*",
       "--schema_poll_interval_ms=100", "--cache_max_lag_ms=2000"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(AwaitLive(client)) << server->OutputTail();
  ExecSql(absl::StrCat("CREATE TABLE ", kSchema,
                       ".created_later (id bigint PRIMARY KEY, name varchar)"));
  ExecSql(absl::StrCat("INSERT INTO ", kSchema,
                       ".created_later VALUES (1, 'one')"));
  ASSERT_TRUE(AwaitNowCached(client, *server, "created_later"))
      << server->OutputTail();

  ExpectRowOneCachedAndFollowed(client, "created_later", "one", "uno");
  server.reset();
  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".created_later"));
}

// A cached table dropped and created again (another OID) while rowgate
// runs: once the schema poller has reloaded, the old rows never answer for
// the new table (DDL is not in the replication stream: until that reload
// they may, README "Migrations"), and the new table is cached in its turn
// (the feed follows it, replacing the old one).
TEST_F(CacheTest, TableCreatedAgainIsCachedAgain) {
  const std::string create =
      absl::StrCat("CREATE TABLE ", kSchema,
                   ".reborn (id bigint PRIMARY KEY, name varchar)");
  ExecSql(create);
  ExecSql(absl::StrCat("INSERT INTO ", kSchema, ".reborn VALUES (1, 'old')"));
  auto server = RowgateProcess::Start(
      {absl::StrCat("--schema=", kSchema), "--cache_entities=reborn",
       "--schema_poll_interval_ms=100", "--cache_max_lag_ms=2000"});
  ASSERT_NE(server, nullptr);
  Client client(server->NewChannel());
  ASSERT_TRUE(AwaitLive(client)) << server->OutputTail();
  EXPECT_EQ(NameAt(client, "reborn", Int(1)), "old");
  EXPECT_EQ(NameAt(client, "reborn", Int(1)), "old");  // a hit now

  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".reborn"));
  ExecSql(create);
  ExecSql(absl::StrCat("INSERT INTO ", kSchema, ".reborn VALUES (1, 'new')"));
  ASSERT_TRUE(AwaitNowCached(client, *server, "reborn"))
      << server->OutputTail();
  ExpectRowOneCachedAndFollowed(client, "reborn", "new", "newer");
  server.reset();
  ExecSql(absl::StrCat("DROP TABLE ", kSchema, ".reborn"));
}

}  // namespace
}  // namespace rowgate::e2e
