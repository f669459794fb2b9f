// The row cache: its byte bound under key spaces far larger than it, its
// accounting, the feed's states (not live -> live -> interrupted), and the
// fill protocol against the classic race, made deterministic with a fake
// feed (the listener's methods called directly) and a fake table whose
// fetches take their snapshot when they start and then wait at a gate the
// test opens.
#include "loader/row_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "loader/batch_loader.h"

namespace rowgate::loader {
namespace {

using ::testing::ElementsAre;

std::shared_ptr<const storage::Catalog> TwoEntities() {
  auto entity = [](std::string name) {
    storage::Entity e;
    e.name = name;
    e.qualified_name = absl::StrCat("\"public\".\"", name, "\"");
    storage::Column id;
    id.name = "id";
    id.quoted_name = "\"id\"";
    id.type = storage::ColumnType::kInt64;
    storage::Column label;
    label.name = "label";
    label.quoted_name = "\"label\"";
    label.type = storage::ColumnType::kText;
    e.columns = {id, label};
    e.primary_key = 0;
    return e;
  };
  return storage::Catalog::FromEntities({entity("things"), entity("others")});
}

CachedRows RowOf(int64_t id, std::string label) {
  return std::make_shared<const std::vector<storage::Row>>(
      std::vector<storage::Row>{storage::Row{id, std::move(label)}});
}

std::string LabelOf(const std::vector<storage::Row>* rows) {
  if (rows == nullptr || rows->empty()) return "<missing>";
  return std::get<std::string>((*rows)[0][1]);
}

// A table {id -> label} behind a BatchExecutor. A fetch takes its snapshot
// as it starts (as a statement in PostgreSQL does), is recorded, then waits
// while the gate is closed. std::mutex so ThreadSanitizer sees it.
class FakeTableExecutor : public BatchExecutor {
 public:
  FakeTableExecutor() : thread_([this] { Work(); }) {}
  ~FakeTableExecutor() override { Shutdown(); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
      stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void Run(Task task) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++runs_;
      tasks_.push_back(std::move(task));
    }
    changed_.notify_all();
  }
  // A transaction commits: the table changes (the feed tells the cache
  // separately, when the test says so).
  void Commit(int64_t id, std::optional<std::string> label) {
    std::lock_guard<std::mutex> lock(mu_);
    if (label) {
      table_[id] = *label;
    } else {
      table_.erase(id);
    }
  }
  void SetOpen(bool open) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = open;
    }
    changed_.notify_all();
  }
  void AwaitFetches(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return fetches_.size() >= n; });
  }
  // Blocks until every fetch started has returned and its task is done.
  void AwaitIdle() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return tasks_.empty() && !busy_; });
  }
  std::vector<std::vector<std::string>> fetches() {
    std::lock_guard<std::mutex> lock(mu_);
    return fetches_;
  }
  int runs() {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }

 private:
  absl::StatusOr<storage::KeyedRows> Fetch(
      int key_column, const std::vector<std::string>& keys) {
    std::unique_lock<std::mutex> lock(mu_);
    storage::KeyedRows rows;
    for (const auto& [id, label] : table_) {
      const std::string text =
          key_column == 0 ? absl::StrCat(id) : std::string(label);
      for (const std::string& key : keys) {
        if (key == text) rows.by_key[key].push_back({id, label});
      }
    }
    fetches_.push_back(keys);
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
    return rows;
  }

  void Work() {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        changed_.wait(lock, [&] { return !tasks_.empty() || stopping_; });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
        busy_ = true;
      }
      std::move(task)([this](const storage::Entity&, int key_column,
                             const std::vector<std::string>& keys, absl::Time,
                             storage::StatementCancel*) {
        return Fetch(key_column, keys);
      });
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_ = false;
      }
      changed_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::map<int64_t, std::string> table_;
  std::deque<Task> tasks_;
  std::vector<std::vector<std::string>> fetches_;
  int runs_ = 0;
  bool open_ = true;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

// The answer of one Load, and on which thread it came.
struct Answer {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread::id thread;
  absl::Status status;
  std::vector<std::string> labels;
  // Per key: the cache's encoding of its row, or "<none>".
  std::vector<std::string> wires;

  LoadCallback Callback() {
    return [this](absl::StatusOr<LoadResult> result) {
      std::lock_guard<std::mutex> lock(mu);
      thread = std::this_thread::get_id();
      status = result.status();
      if (result.ok()) {
        for (const auto* rows : result->rows_per_key) {
          labels.push_back(LabelOf(rows));
        }
        for (size_t i = 0; i < result->rows_per_key.size(); ++i) {
          wires.push_back(i < result->wire_per_key.size() &&
                                  !result->wire_per_key[i].empty()
                              ? std::string(result->wire_per_key[i])
                              : "<none>");
        }
      }
      done = true;
      cv.notify_all();
    };
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  bool Done() {
    std::lock_guard<std::mutex> lock(mu);
    return done;
  }
};

class RowCacheTest : public ::testing::Test {
 protected:
  RowCacheTest()
      : catalog_(TwoEntities()),
        things_(catalog_->Find("things")),
        others_(catalog_->Find("others")) {}

  RowCache::Answer Look(RowCache& cache, const storage::Entity* e,
                        absl::string_view key, std::string* label = nullptr) {
    CachedEntry entry;
    RowCache::Answer a = cache.Lookup(*e, key, &entry);
    if (label != nullptr) *label = LabelOf(entry.rows());
    return a;
  }

  std::shared_ptr<const storage::Catalog> catalog_;
  const storage::Entity* things_;
  const storage::Entity* others_;
};

// Far more distinct keys than fit, uniform and then skewed: the accounted
// bytes never pass the bound, and the entries it holds are reachable.
TEST_F(RowCacheTest, EvictionKeepsBytesUnderTheBoundForAnyKeySpace) {
  constexpr size_t kMax = 64 << 10;
  RowCache cache({.max_bytes = kMax, .shards = 8});
  cache.Enable(things_);
  cache.OnLive(1);
  std::mt19937_64 random(7);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 200000; ++i) {
      // Round 0: uniform over 10M keys; round 1: a hot set plus a long tail,
      // with labels from 0 to 300 bytes (past the small-string buffer).
      const uint64_t id = round == 0
                              ? random() % 10000000
                              : (random() % 4 == 0 ? random() % 100 : random());
      const std::string key = absl::StrCat(id);
      cache.Install(cache.BeginFill(), *things_, key,
                    RowOf(static_cast<int64_t>(id % 1000000),
                          std::string(random() % 300, 'x')));
      if (i % 1000 == 0) {
        ASSERT_LE(cache.Stats().bytes, kMax);
      }
    }
  }
  const RowCacheStats s = cache.Stats();
  EXPECT_LE(s.bytes, kMax);
  EXPECT_GT(s.evictions, 300000u);
  EXPECT_GT(s.entries, 50u);
  EXPECT_LT(s.entries, 2000u);  // 64 KiB cannot hold more at >= 100 B each
}

// By default a sixteenth of the bound is kept free of entries, for what the
// allocator keeps beyond them (RowCache::Options::allocator_reserve).
TEST_F(RowCacheTest, EntriesLeaveTheAllocatorsReserveFree) {
  constexpr size_t kMax = 64 << 10;
  RowCache cache({.max_bytes = kMax, .shards = 4});
  cache.Enable(things_);
  cache.OnLive(1);
  for (int i = 0; i < 20000; ++i) {
    cache.Install(cache.BeginFill(), *things_, absl::StrCat(i),
                  RowOf(i, std::string(40, 'x')));
    ASSERT_LE(cache.Stats().bytes, kMax - kMax / 16);
  }
  // Full up to that: the last shard's worth of room is under an entry.
  EXPECT_GT(
      cache.Stats().bytes,
      kMax - kMax / 16 -
          4 * RowCache::EntryBytes("20000", RowOf(1, std::string(40, 'x'))));
  EXPECT_EQ(cache.Stats().max_bytes, kMax);
}

// Eviction gives an entry looked up since it last came round a second
// chance: of a full shard's entries, a hot one looked up between installs
// survives a stream of new keys that evicts every cold one.
TEST_F(RowCacheTest, EntriesLookedUpSurviveEvictionOfColdOnes) {
  const size_t entry = RowCache::EntryBytes("100", RowOf(100, "x"));
  RowCache cache({.max_bytes = 8 * entry, .shards = 1, .allocator_reserve = 0});
  cache.Enable(things_);
  cache.OnLive(1);
  for (int id = 100; id < 108; ++id) {
    ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, absl::StrCat(id),
                              RowOf(id, "x")));
  }
  CachedEntry rows;
  for (int id = 200; id < 240; ++id) {
    // 100 is hot: looked up before every install.
    ASSERT_EQ(cache.Lookup(*things_, "100", &rows), RowCache::Answer::kRows)
        << "evicted at install of " << id;
    cache.Install(cache.BeginFill(), *things_, absl::StrCat(id),
                  RowOf(id, "x"));
    ASSERT_LE(cache.Stats().bytes, 8 * entry);
  }
  for (int id = 101; id < 108; ++id) {
    EXPECT_EQ(cache.Lookup(*things_, absl::StrCat(id), &rows),
              RowCache::Answer::kUnknown)
        << id << " is cold and should be gone";
  }
  EXPECT_EQ(cache.Lookup(*things_, "239", &rows), RowCache::Answer::kRows);
}

// Bytes are the entries' accounted sizes, long strings by their capacity,
// and return to zero as entries go.
TEST_F(RowCacheTest, AccountsHeapCapacityOfKeysAndValues) {
  RowCache cache({.max_bytes = 1 << 20, .shards = 4});
  cache.Enable(things_);
  cache.OnLive(1);
  const CachedRows big = RowOf(1, std::string(5000, 'b'));
  const CachedRows small = RowOf(2, "s");
  EXPECT_GE(RowCache::EntryBytes("1", big), 5000u);
  EXPECT_GT(RowCache::EntryBytes("1", big), RowCache::EntryBytes("2", small));
  // Even a missing key costs its node: many of them cannot pass the bound.
  EXPECT_GE(RowCache::EntryBytes("3", nullptr), 64u);
  const std::string long_key(100, 'k');
  // A key's bytes count, one by one (it lives in the entry's block).
  EXPECT_EQ(RowCache::EntryBytes(long_key, nullptr),
            RowCache::EntryBytes("3", nullptr) + long_key.size() - 1);

  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "1", big));
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "2", small));
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, long_key, nullptr));
  EXPECT_EQ(cache.Stats().bytes, RowCache::EntryBytes("1", big) +
                                     RowCache::EntryBytes("2", small) +
                                     RowCache::EntryBytes(long_key, nullptr));
  EXPECT_EQ(cache.Stats().entries, 3u);
  cache.Invalidate(*things_, {"1", "2", long_key});
  EXPECT_EQ(cache.Stats().bytes, 0u);
  EXPECT_EQ(cache.Stats().entries, 0u);
}

// A stand-in for the service's encoder: the table's name and the label.
std::string EncodeForTest(const storage::Entity& entity,
                          const storage::Row& row) {
  return absl::StrCat(entity.name, ":", std::get<std::string>(row[1]));
}

// With an encoder, an entry of one row keeps its encoding (made when it is
// installed or written), counted in the bound; a missing key has none, and
// without an encoder nothing is encoded.
TEST_F(RowCacheTest, EncodedRowIsKeptBesideTheRowAndCounted) {
  RowCache cache({.max_bytes = 1 << 20, .encode_row = EncodeForTest});
  cache.Enable(things_);
  cache.OnLive(1);
  const CachedRows row = RowOf(1, std::string(100, 'a'));
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "1", row));
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "2", nullptr));
  CachedEntry entry;
  ASSERT_EQ(cache.Lookup(*things_, "1", &entry), RowCache::Answer::kRows);
  EXPECT_EQ(entry.wire(), "things:" + std::string(100, 'a'));
  const size_t wire_bytes = entry.wire().size();
  EXPECT_GE(RowCache::EntryBytes("1", row, wire_bytes),
            RowCache::EntryBytes("1", row) + 100);
  EXPECT_EQ(cache.Stats().bytes, RowCache::EntryBytes("1", row, wire_bytes) +
                                     RowCache::EntryBytes("2", nullptr));
  EXPECT_EQ(cache.Lookup(*things_, "2", &entry), RowCache::Answer::kMissing);

  cache.PutWritten(cache.BeginFill(), *things_, "1", RowOf(1, "written"));
  ASSERT_EQ(cache.Lookup(*things_, "1", &entry), RowCache::Answer::kRows);
  EXPECT_EQ(entry.wire(), "things:written");

  RowCache plain({.max_bytes = 1 << 20});
  plain.Enable(things_);
  plain.OnLive(1);
  ASSERT_TRUE(plain.Install(plain.BeginFill(), *things_, "1", row));
  ASSERT_EQ(plain.Lookup(*things_, "1", &entry), RowCache::Answer::kRows);
  EXPECT_TRUE(entry.wire().empty());
  EXPECT_EQ(plain.Stats().bytes, RowCache::EntryBytes("1", row));
}

// Encoded entries keep the cache under its bound however many keys come.
TEST_F(RowCacheTest, EncodedEntriesStayUnderTheBound) {
  constexpr size_t kBound = 64 << 10;
  RowCache cache(
      {.max_bytes = kBound, .shards = 4, .encode_row = EncodeForTest});
  cache.Enable(things_);
  cache.OnLive(1);
  for (int i = 0; i < 20000; ++i) {
    cache.Install(cache.BeginFill(), *things_, absl::StrCat(i),
                  RowOf(i, std::string(40, 'x')));
    ASSERT_LE(cache.Stats().bytes, kBound);
  }
  EXPECT_GT(cache.Stats().evictions, 0u);
}

// An entry larger than a shard's share is not cached at all.
TEST_F(RowCacheTest, RefusesAnEntryLargerThanAShard) {
  RowCache cache({.max_bytes = 4096, .shards = 4});
  cache.Enable(things_);
  cache.OnLive(1);
  EXPECT_FALSE(cache.Install(cache.BeginFill(), *things_, "1",
                             RowOf(1, std::string(2000, 'x'))));
  EXPECT_EQ(cache.Stats().bytes, 0u);
  EXPECT_EQ(Look(cache, things_, "1"), RowCache::Answer::kUnknown);
}

// Until the feed is live nothing is answered or installed; an interruption
// forgets everything and stops answering until the next OnLive, and a fill
// begun before it is refused even after the feed is live again.
TEST_F(RowCacheTest, InterruptedStopsAnsweringUntilLive) {
  RowCache cache({.max_bytes = 1 << 20});
  cache.Enable(things_);
  EXPECT_FALSE(cache.BeginFill().valid);
  EXPECT_FALSE(cache.Install(cache.BeginFill(), *things_, "1", RowOf(1, "a")));
  EXPECT_EQ(Look(cache, things_, "1"), RowCache::Answer::kUnknown);

  cache.OnLive(100);
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "1", RowOf(1, "a")));
  std::string label;
  EXPECT_EQ(Look(cache, things_, "1", &label), RowCache::Answer::kRows);
  EXPECT_EQ(label, "a");

  const FillToken before = cache.BeginFill();
  cache.OnInterrupted(absl::UnavailableError("walsender terminated"));
  EXPECT_FALSE(cache.live());
  EXPECT_EQ(Look(cache, things_, "1"), RowCache::Answer::kUnknown);
  EXPECT_EQ(cache.Stats().entries, 0u);
  EXPECT_FALSE(cache.Install(before, *things_, "2", RowOf(2, "b")));
  EXPECT_FALSE(cache.Install(cache.BeginFill(), *things_, "2", RowOf(2, "b")));

  cache.OnLive(200);
  EXPECT_TRUE(cache.live());
  EXPECT_FALSE(cache.Install(before, *things_, "2", RowOf(2, "b")));
  EXPECT_EQ(Look(cache, things_, "2"), RowCache::Answer::kUnknown);
  EXPECT_TRUE(cache.Install(cache.BeginFill(), *things_, "2", RowOf(2, "b")));
  EXPECT_EQ(Look(cache, things_, "2"), RowCache::Answer::kRows);
  EXPECT_EQ(cache.Stats().live_lsn, 200u);
  EXPECT_EQ(cache.Stats().interruptions, 1u);
}

// A key with no row is an answer; the insert that gives it one invalidates
// it like any change.
TEST_F(RowCacheTest, KnownMissingIsInvalidatedByAnInsert) {
  RowCache cache({.max_bytes = 1 << 20});
  cache.Enable(things_);
  cache.OnLive(1);
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "7", nullptr));
  EXPECT_EQ(Look(cache, things_, "7"), RowCache::Answer::kMissing);
  cache.OnCommit(50, {{things_, {"7"}}});
  EXPECT_EQ(Look(cache, things_, "7"), RowCache::Answer::kUnknown);
  EXPECT_EQ(cache.Stats().applied_lsn, 50u);
}

// TRUNCATE drops its entity only; entities not enabled are never cached.
TEST_F(RowCacheTest, TruncateDropsOnlyItsEntity) {
  RowCache cache({.max_bytes = 1 << 20});
  cache.Enable(things_);
  cache.Enable(others_);
  cache.OnLive(1);
  for (int i = 0; i < 50; ++i) {
    const std::string key = absl::StrCat(i);
    cache.Install(cache.BeginFill(), *things_, key, RowOf(i, "t"));
    cache.Install(cache.BeginFill(), *others_, key, RowOf(i, "o"));
  }
  const FillToken before = cache.BeginFill();
  cache.OnTruncate(60, *things_);
  for (int i = 0; i < 50; ++i) {
    const std::string key = absl::StrCat(i);
    EXPECT_EQ(Look(cache, things_, key), RowCache::Answer::kUnknown);
    EXPECT_EQ(Look(cache, others_, key), RowCache::Answer::kRows);
  }
  // A fill that read before the TRUNCATE must not bring a row back.
  EXPECT_FALSE(cache.Install(before, *things_, "1", RowOf(1, "t")));
  EXPECT_EQ(cache.Stats().entries, 50u);

  RowCache only_things({.max_bytes = 1 << 20});
  only_things.Enable(things_);
  only_things.OnLive(1);
  EXPECT_FALSE(only_things.Install(only_things.BeginFill(), *others_, "1",
                                   RowOf(1, "o")));
}

// The "things" table as a schema reload may describe it: with another
// column, another OID (dropped and created again) or a nondeterministic
// collation on its key.
struct ThingsShape {
  uint32_t oid = 7;
  bool extra_column = false;
  bool text_key_collated = false;
};
std::shared_ptr<const storage::Catalog> ThingsCatalog(ThingsShape shape) {
  storage::Entity e;
  e.name = "things";
  e.qualified_name = "\"public\".\"things\"";
  e.oid = shape.oid;
  storage::Column id;
  id.name = "id";
  id.quoted_name = "\"id\"";
  id.type = storage::ColumnType::kInt64;
  id.type_name = "bigint";
  if (shape.text_key_collated) {
    id.type = storage::ColumnType::kText;
    id.type_name = "text";
    id.deterministic_collation = false;
  }
  storage::Column label;
  label.name = "label";
  label.quoted_name = "\"label\"";
  label.type = storage::ColumnType::kText;
  label.type_name = "text";
  e.columns = {id, label};
  if (shape.extra_column) {
    storage::Column note = label;
    note.name = "note";
    note.quoted_name = "\"note\"";
    e.columns.push_back(note);
  }
  e.primary_key = 0;
  return storage::Catalog::FromEntities({e});
}

// A live cache of `things` (only), holding key "1".
std::unique_ptr<RowCache> CacheHoldingOneThing(const storage::Entity& things) {
  auto cache =
      std::make_unique<RowCache>(RowCache::Options{.max_bytes = 1 << 20});
  cache->Enable(&things);
  cache->OnLive(1);
  EXPECT_TRUE(cache->Install(cache->BeginFill(), things, "1", RowOf(1, "a")));
  return cache;
}

// A reload that did not change the table: its entries stay, and the new
// catalog's entity reads and fills them as the old one did.
TEST_F(RowCacheTest, RebindToAnUnchangedTableKeepsItsEntries) {
  auto before = ThingsCatalog({});
  auto after = ThingsCatalog({});
  const storage::Entity* old_things = before->Find("things");
  const storage::Entity* new_things = after->Find("things");
  std::unique_ptr<RowCache> owned = CacheHoldingOneThing(*old_things);
  RowCache& cache = *owned;
  EXPECT_FALSE(cache.Caches(new_things));

  EXPECT_THAT(cache.Rebind(*after), ::testing::IsEmpty());
  EXPECT_TRUE(cache.Caches(new_things));
  EXPECT_TRUE(cache.Caches(old_things));
  std::string label;
  EXPECT_EQ(Look(cache, new_things, "1", &label), RowCache::Answer::kRows);
  EXPECT_EQ(label, "a");
  EXPECT_TRUE(
      cache.Install(cache.BeginFill(), *new_things, "2", RowOf(2, "b")));
  EXPECT_EQ(Look(cache, old_things, "2", &label), RowCache::Answer::kRows);
  // The feed names the start-up entity: its invalidation reaches entries
  // the new catalog's entity filled.
  cache.OnCommit(5, {storage::ChangedKeys{old_things, {"2"}}});
  EXPECT_EQ(Look(cache, new_things, "2"), RowCache::Answer::kUnknown);
  EXPECT_EQ(cache.Stats().entries, 1u);
}

// A reload that added a column: rows cached in the old shape never answer
// for the new one, and fills that read the old shape are not installed;
// the table is cached again in its new shape.
TEST_F(RowCacheTest, RebindToAReshapedTableEmptiesItAndCachesTheNewShape) {
  auto before = ThingsCatalog({});
  auto after = ThingsCatalog({.extra_column = true});
  const storage::Entity* old_things = before->Find("things");
  const storage::Entity* new_things = after->Find("things");
  std::unique_ptr<RowCache> owned = CacheHoldingOneThing(*old_things);
  RowCache& cache = *owned;
  const FillToken old_fill = cache.BeginFill();

  EXPECT_THAT(cache.Rebind(*after), ::testing::IsEmpty());
  EXPECT_FALSE(cache.Caches(old_things));
  EXPECT_TRUE(cache.Caches(new_things));
  EXPECT_EQ(cache.Stats().entries, 0u);
  EXPECT_EQ(Look(cache, new_things, "1"), RowCache::Answer::kUnknown);
  EXPECT_EQ(Look(cache, old_things, "1"), RowCache::Answer::kUnknown);
  // A caller still holding the old catalog fills in the old shape.
  EXPECT_FALSE(
      cache.Install(cache.BeginFill(), *old_things, "1", RowOf(1, "a")));
  // A new-shape fill whose statement was sent before the reload emptied
  // the table is refused too, as after any clear.
  EXPECT_FALSE(cache.Install(old_fill, *new_things, "1", RowOf(1, "a")));
  auto three_columns = std::make_shared<const std::vector<storage::Row>>(
      std::vector<storage::Row>{storage::Row{int64_t{1}, "a", "n"}});
  EXPECT_TRUE(
      cache.Install(cache.BeginFill(), *new_things, "1", three_columns));
  CachedEntry entry;
  ASSERT_EQ(cache.Lookup(*new_things, "1", &entry), RowCache::Answer::kRows);
  EXPECT_EQ((*entry.rows())[0].size(), 3u);
  EXPECT_EQ(cache.Lookup(*old_things, "1", &entry), RowCache::Answer::kUnknown);
  // Writes through rowgate with the old entity only invalidate.
  cache.PutWritten(cache.BeginFill(), *old_things, "1", RowOf(1, "b"));
  EXPECT_EQ(Look(cache, new_things, "1"), RowCache::Answer::kUnknown);
  EXPECT_EQ(cache.Stats().entries, 0u);
}

// A table dropped and created again (another OID: the change feed's
// publication named the old one), one that became uncacheable, and one
// that is gone all stop being cached, each with its reason.
TEST_F(RowCacheTest, RebindStopsCachingRecreatedUncacheableOrDroppedTables) {
  struct Case {
    std::shared_ptr<const storage::Catalog> after;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {ThingsCatalog({.oid = 8}), "created again"},
      {ThingsCatalog({.text_key_collated = true}), "nondeterministic"},
      {storage::Catalog::FromEntities({}), "gone"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reason);
    auto before = ThingsCatalog({});
    const storage::Entity* old_things = before->Find("things");
    std::unique_ptr<RowCache> owned = CacheHoldingOneThing(*old_things);
    RowCache& cache = *owned;
    EXPECT_THAT(cache.Rebind(*c.after),
                ElementsAre(::testing::AllOf(::testing::HasSubstr("things"),
                                             ::testing::HasSubstr(c.reason))));
    EXPECT_EQ(cache.Stats().entries, 0u);
    EXPECT_FALSE(cache.Caches(old_things));
    const storage::Entity* new_things = c.after->Find("things");
    if (new_things != nullptr) {
      EXPECT_FALSE(cache.Caches(new_things));
      EXPECT_FALSE(
          cache.Install(cache.BeginFill(), *new_things, "1", RowOf(1, "a")));
    }
    // And it stays so when the table comes back as it was.
    EXPECT_THAT(cache.Rebind(*ThingsCatalog({})), ::testing::IsEmpty());
    EXPECT_FALSE(cache.Caches(ThingsCatalog({})->Find("things")));
  }
}

// The change feed follows a table created again: Enable, with the cache
// live and shared, caches the new table under the old name. Nothing of the
// old table answers, and a fill captured before Enable (it may have read
// before an invalidation the cache dropped, having no table for it) is
// refused; later fills install.
TEST_F(RowCacheTest, EnableOfATableCreatedAgainCachesItFromThenOn) {
  auto before = ThingsCatalog({});
  const storage::Entity* old_things = before->Find("things");
  std::unique_ptr<RowCache> owned = CacheHoldingOneThing(*old_things);
  RowCache& cache = *owned;
  auto after = ThingsCatalog({.oid = 8});
  const storage::Entity* new_things = after->Find("things");
  ASSERT_THAT(cache.Rebind(*after),
              ElementsAre(::testing::HasSubstr("created again")));
  const FillToken early = cache.BeginFill();

  cache.Enable(new_things);
  EXPECT_TRUE(cache.Caches(new_things));
  EXPECT_FALSE(cache.Caches(old_things));
  CachedEntry rows;
  EXPECT_EQ(cache.Lookup(*new_things, "1", &rows), RowCache::Answer::kUnknown);
  EXPECT_FALSE(cache.Install(early, *new_things, "1", RowOf(1, "early")));
  ASSERT_TRUE(
      cache.Install(cache.BeginFill(), *new_things, "1", RowOf(1, "late")));
  ASSERT_EQ(cache.Lookup(*new_things, "1", &rows), RowCache::Answer::kRows);
  EXPECT_EQ(LabelOf(rows.rows()), "late");
  // Invalidations by name reach the new table.
  cache.Invalidate(*old_things, {"1"});
  EXPECT_EQ(cache.Lookup(*new_things, "1", &rows), RowCache::Answer::kUnknown);
}

TEST(RowCacheCacheableTest, RefusesKeysTheChangeFeedWouldNameOtherwise) {
  EXPECT_TRUE(RowCache::Cacheable(*ThingsCatalog({})->Find("things")).ok());
  const absl::Status collated = RowCache::Cacheable(
      *ThingsCatalog({.text_key_collated = true})->Find("things"));
  EXPECT_EQ(collated.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(collated.message(), ::testing::HasSubstr("nondeterministic"));
}

// A write through rowgate: the written row replaces the cached one, and a
// fill that read the old row before the write cannot put it back.
TEST_F(RowCacheTest, WrittenRowSupersedesFillsInFlight) {
  RowCache cache({.max_bytes = 1 << 20});
  cache.Enable(things_);
  cache.OnLive(1);
  ASSERT_TRUE(cache.Install(cache.BeginFill(), *things_, "1", RowOf(1, "old")));
  const FillToken reader = cache.BeginFill();  // a fill reads "old"...
  const FillToken writer = cache.BeginFill();  // ...a write begins...
  cache.PutWritten(writer, *things_, "1", RowOf(1, "new"));
  EXPECT_FALSE(cache.Install(reader, *things_, "1", RowOf(1, "old")));
  std::string label;
  EXPECT_EQ(Look(cache, things_, "1", &label), RowCache::Answer::kRows);
  EXPECT_EQ(label, "new");
  // A write whose statement began before another invalidation of the key
  // (maybe a later commit) only forgets.
  const FillToken slow_writer = cache.BeginFill();
  cache.OnCommit(9, {{things_, {"1"}}});
  cache.PutWritten(slow_writer, *things_, "1", RowOf(1, "older"));
  EXPECT_EQ(Look(cache, things_, "1"), RowCache::Answer::kUnknown);
}

class CachedLoaderTest : public RowCacheTest {
 protected:
  CachedLoaderTest() {
    cache_.Enable(things_);
    cache_.OnLive(1);
    for (int i = 1; i <= 10; ++i) executor_.Commit(i, absl::StrCat("v1-", i));
  }
  ~CachedLoaderTest() override { executor_.Shutdown(); }

  Loader::Options LoaderOptions() {
    Loader::Options o;
    o.cache = &cache_;
    return o;
  }
  std::vector<std::string> LoadNow(Loader& loader,
                                   std::vector<std::string> keys,
                                   int key_column = 0) {
    Answer answer;
    loader.Load({things_, key_column, std::move(keys)}, answer.Callback());
    answer.Wait();
    EXPECT_TRUE(answer.status.ok()) << answer.status;
    executor_.AwaitIdle();  // the batch's fill is done too
    return answer.labels;
  }

  RowCache cache_{{.max_bytes = 1 << 20}};
  FakeTableExecutor executor_;
};

// Every key cached: answered inside Load(), on the calling thread, and the
// executor is never asked to run anything.
TEST_F(CachedLoaderTest, AllHitsAreAnsweredInlineWithoutTheExecutor) {
  Loader loader(LoaderOptions(), executor_);
  EXPECT_THAT(LoadNow(loader, {"1", "2", "99"}),
              ElementsAre("v1-1", "v1-2", "<missing>"));
  const int runs = executor_.runs();
  executor_.SetOpen(false);  // a fetch now would never return
  Answer answer;
  std::shared_ptr<LoadTicket> ticket =
      loader.Load({things_, 0, {"2", "99", "1", "2"}}, answer.Callback());
  ASSERT_TRUE(answer.Done());  // before Load returned
  EXPECT_EQ(answer.thread, std::this_thread::get_id());
  EXPECT_EQ(ticket, nullptr);
  EXPECT_THAT(answer.labels, ElementsAre("v1-2", "<missing>", "v1-1", "v1-2"));
  EXPECT_EQ(executor_.runs(), runs);
  loader.Cancel(ticket, absl::CancelledError("nothing to cancel"));
  executor_.SetOpen(true);
}

// Hits carry the cache's encoding of their rows to the caller; keys fetched
// from the table (this time) and missing keys carry none.
TEST_F(CachedLoaderTest, HitsCarryTheirEncodedRows) {
  RowCache cache({.max_bytes = 1 << 20, .encode_row = EncodeForTest});
  cache.Enable(things_);
  cache.OnLive(1);
  Loader::Options options;
  options.cache = &cache;
  Loader loader(options, executor_);
  LoadNow(loader, {"1", "2"});
  Answer answer;
  loader.Load({things_, 0, {"2", "3", "99", "1"}}, answer.Callback());
  answer.Wait();
  ASSERT_TRUE(answer.status.ok()) << answer.status;
  EXPECT_THAT(answer.labels, ElementsAre("v1-2", "v1-3", "<missing>", "v1-1"));
  EXPECT_THAT(answer.wires,
              ElementsAre("things:v1-2", "<none>", "<none>", "things:v1-1"));
  executor_.AwaitIdle();
  Answer all_hits;
  loader.Load({things_, 0, {"3", "1"}}, all_hits.Callback());
  ASSERT_TRUE(all_hits.Done());
  EXPECT_THAT(all_hits.wires, ElementsAre("things:v1-3", "things:v1-1"));
}

// A partly cached lookup fetches only the keys the cache lacks, and answers
// every key in the caller's order.
TEST_F(CachedLoaderTest, PartialHitFetchesOnlyTheMissingKeys) {
  Loader loader(LoaderOptions(), executor_);
  LoadNow(loader, {"1", "2"});
  EXPECT_THAT(LoadNow(loader, {"1", "3", "2", "3", "42"}),
              ElementsAre("v1-1", "v1-3", "v1-2", "v1-3", "<missing>"));
  const auto fetches = executor_.fetches();
  ASSERT_EQ(fetches.size(), 2u);
  EXPECT_THAT(fetches[1], ElementsAre("3", "42"));
  // Now all five are known (42 as missing).
  const int runs = executor_.runs();
  EXPECT_THAT(LoadNow(loader, {"42", "3"}), ElementsAre("<missing>", "v1-3"));
  EXPECT_EQ(executor_.runs(), runs);
}

// The classic race: a miss fetches K; an external UPDATE of K commits and
// its invalidation arrives while the fetch is still on its way back. The row
// the fetch read must not be installed: the next lookup goes to the table
// and sees the new row.
TEST_F(CachedLoaderTest, FetchThatRacedAnInvalidationIsNotInstalled) {
  Loader loader(LoaderOptions(), executor_);
  executor_.SetOpen(false);
  Answer first;
  loader.Load({things_, 0, {"5"}}, first.Callback());
  executor_.AwaitFetches(1);  // its snapshot holds v1-5
  executor_.Commit(5, "v2-5");
  cache_.OnCommit(10, {{things_, {"5"}}});
  executor_.SetOpen(true);
  first.Wait();
  executor_.AwaitIdle();
  EXPECT_THAT(first.labels, ElementsAre("v1-5"));  // overlapped the commit
  EXPECT_EQ(Look(cache_, things_, "5"), RowCache::Answer::kUnknown);
  EXPECT_THAT(LoadNow(loader, {"5"}), ElementsAre("v2-5"));
  EXPECT_EQ(executor_.fetches().size(), 2u);
  const int runs = executor_.runs();
  EXPECT_THAT(LoadNow(loader, {"5"}), ElementsAre("v2-5"));  // now a hit
  EXPECT_EQ(executor_.runs(), runs);
}

// The same race for a key that does not exist yet: an INSERT's invalidation
// during the fetch keeps "missing" out of the cache.
TEST_F(CachedLoaderTest, MissingReadThatRacedAnInsertIsNotInstalled) {
  Loader loader(LoaderOptions(), executor_);
  executor_.SetOpen(false);
  Answer first;
  loader.Load({things_, 0, {"77"}}, first.Callback());
  executor_.AwaitFetches(1);
  executor_.Commit(77, "new-77");
  cache_.OnCommit(11, {{things_, {"77"}}});
  executor_.SetOpen(true);
  first.Wait();
  executor_.AwaitIdle();
  EXPECT_THAT(first.labels, ElementsAre("<missing>"));
  EXPECT_THAT(LoadNow(loader, {"77"}), ElementsAre("new-77"));
}

// The fetch's snapshot predates a commit whose invalidation arrives only
// after the install: the stale row is served until then (within the feed's
// lag) and is gone once the invalidation arrives.
TEST_F(CachedLoaderTest, InvalidationAfterTheInstallRemovesTheRow) {
  Loader loader(LoaderOptions(), executor_);
  executor_.SetOpen(false);
  Answer first;
  loader.Load({things_, 0, {"6"}}, first.Callback());
  executor_.AwaitFetches(1);    // snapshot: v1-6
  executor_.Commit(6, "v2-6");  // committed; the feed has not told yet
  executor_.SetOpen(true);
  first.Wait();
  executor_.AwaitIdle();
  std::string label;
  ASSERT_EQ(Look(cache_, things_, "6", &label), RowCache::Answer::kRows);
  EXPECT_EQ(label, "v1-6");  // stale, within the replication lag
  cache_.OnCommit(12, {{things_, {"6"}}});
  EXPECT_EQ(Look(cache_, things_, "6"), RowCache::Answer::kUnknown);
  EXPECT_THAT(LoadNow(loader, {"6"}), ElementsAre("v2-6"));
}

// The sequence is captured when the batch's statement is sent, not when the
// lookup arrived: an invalidation while the lookup waits behind another
// query does not stop its (newer) row from being cached.
TEST_F(CachedLoaderTest, SequenceIsCapturedWhenTheStatementIsSent) {
  Loader loader(LoaderOptions(), executor_);
  executor_.SetOpen(false);
  Answer blocker, waiting;
  loader.Load({things_, 0, {"1"}}, blocker.Callback());
  executor_.AwaitFetches(1);
  loader.Load({things_, 0, {"8"}}, waiting.Callback());  // queued behind
  executor_.Commit(8, "v2-8");
  cache_.OnCommit(13, {{things_, {"8"}}});
  executor_.SetOpen(true);
  waiting.Wait();
  executor_.AwaitIdle();
  EXPECT_THAT(waiting.labels, ElementsAre("v2-8"));
  std::string label;
  EXPECT_EQ(Look(cache_, things_, "8", &label), RowCache::Answer::kRows);
  EXPECT_EQ(label, "v2-8");
}

// A fetch in flight across an interruption and the feed's return is not
// installed: what it read may predate changes the feed never delivered.
TEST_F(CachedLoaderTest, FetchAcrossAnInterruptionIsNotInstalled) {
  Loader loader(LoaderOptions(), executor_);
  executor_.SetOpen(false);
  Answer first;
  loader.Load({things_, 0, {"4"}}, first.Callback());
  executor_.AwaitFetches(1);
  cache_.OnInterrupted(absl::UnavailableError("slot dropped"));
  executor_.Commit(4, "v2-4");  // never delivered by the feed
  cache_.OnLive(500);
  executor_.SetOpen(true);
  first.Wait();
  executor_.AwaitIdle();
  EXPECT_EQ(Look(cache_, things_, "4"), RowCache::Answer::kUnknown);
  EXPECT_THAT(LoadNow(loader, {"4"}), ElementsAre("v2-4"));
}

// While the feed is interrupted every lookup goes to the table.
TEST_F(CachedLoaderTest, InterruptedCacheSendsEveryLookupToTheTable) {
  Loader loader(LoaderOptions(), executor_);
  LoadNow(loader, {"3"});
  cache_.OnInterrupted(absl::UnavailableError("lagging"));
  executor_.Commit(3, "v2-3");
  EXPECT_THAT(LoadNow(loader, {"3"}), ElementsAre("v2-3"));
  EXPECT_THAT(LoadNow(loader, {"3"}), ElementsAre("v2-3"));
  EXPECT_EQ(executor_.fetches().size(), 3u);
}

// A lookup by another column primes the cache with the rows it found, by
// primary key; it is still answered by the table itself.
TEST_F(CachedLoaderTest, LookupByAnotherColumnPrimesPrimaryKeys) {
  Loader loader(LoaderOptions(), executor_);
  EXPECT_THAT(LoadNow(loader, {"v1-9"}, /*key_column=*/1), ElementsAre("v1-9"));
  std::string label;
  EXPECT_EQ(Look(cache_, things_, "9", &label), RowCache::Answer::kRows);
  EXPECT_EQ(label, "v1-9");
  EXPECT_THAT(LoadNow(loader, {"v1-9"}, 1), ElementsAre("v1-9"));
  EXPECT_EQ(executor_.fetches().size(), 2u);
}

// Many threads looking up, filling, invalidating and clearing at once
// (for ThreadSanitizer); the bound holds at the end.
TEST_F(RowCacheTest, ConcurrentUseStaysWithinTheBound) {
  constexpr size_t kMax = 32 << 10;
  RowCache cache({.max_bytes = kMax, .shards = 4});
  cache.Enable(things_);
  cache.OnLive(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      for (int i = 0; i < 20000; ++i) {
        const std::string key = absl::StrCat(random() % 2000);
        switch (random() % 8) {
          case 0:
            cache.Invalidate(*things_, {key});
            break;
          case 1:
            cache.PutWritten(cache.BeginFill(), *things_, key, RowOf(1, "w"));
            break;
          case 2:
            if (i % 1000 == 0) cache.ClearEntity(*things_);
            break;
          default: {
            CachedEntry entry;
            if (cache.Lookup(*things_, key, &entry) ==
                RowCache::Answer::kUnknown) {
              cache.Install(cache.BeginFill(), *things_, key,
                            RowOf(2, std::string(random() % 40, 'r')));
            } else if (entry.rows() != nullptr) {
              ASSERT_EQ(entry.rows()->size(), 1u);
            }
          }
        }
      }
    });
  }
  std::thread feed([&] {
    for (int i = 0; i < 200; ++i) {
      cache.OnCommit(i, {{things_, {absl::StrCat(i)}}});
      if (i % 50 == 0) {
        cache.OnInterrupted(absl::UnavailableError("restart"));
        cache.OnLive(i);
      }
    }
  });
  for (auto& t : threads) t.join();
  feed.join();
  EXPECT_LE(cache.Stats().bytes, kMax);
}

}  // namespace
}  // namespace rowgate::loader
