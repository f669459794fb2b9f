// rowgate_cache_bench: the row cache's hit path on one thread, without gRPC
// or PostgreSQL, so that its own cost shows apart from the noise of a
// shared machine (bench/run.sh runs it after the gRPC points).
//
// Rows shaped like the demo schema's users (id, name, surname, email,
// lastchange, externalId), encoded as rowgate answers them
// (EncodeRowWithAllColumns), keys looked up uniformly at random:
// - BM_CacheLookup/N: RowCache::Lookup of a primed key and a read of its
//   encoding, over N keys. 16Ki keys fit the CPU's caches; 1Mi (the bench's
//   table) do not, and then a hit costs the cache misses it takes.
// - BM_LoaderCacheHit/N: Loader::Load of one key answered from the cache
//   inline, the whole loader-side hit path a BatchGet of one key takes.
//
//   build/bench/rowgate_cache_bench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "loader/batch_loader.h"
#include "loader/row_cache.h"
#include "service/proto_convert.h"
#include "storage/catalog.h"

namespace rowgate {
namespace {

void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "rowgate_cache_bench: %s\n", what);
  std::abort();
}

std::shared_ptr<const storage::Catalog> Users() {
  storage::Entity users;
  users.name = "users";
  users.qualified_name = "\"public\".\"users\"";
  auto column = [](std::string name, storage::ColumnType type,
                   std::string type_name) {
    storage::Column c;
    c.quoted_name = absl::StrCat("\"", name, "\"");
    c.name = std::move(name);
    c.type = type;
    c.type_name = std::move(type_name);
    return c;
  };
  users.columns = {
      column("id", storage::ColumnType::kInt64, "bigint"),
      column("name", storage::ColumnType::kText, "character varying"),
      column("surname", storage::ColumnType::kText, "character varying"),
      column("email", storage::ColumnType::kText, "character varying"),
      column("lastchange", storage::ColumnType::kTimestamp,
             "timestamp without time zone"),
      column("externalId", storage::ColumnType::kInt64, "bigint"),
  };
  users.primary_key = 0;
  users.key_columns = {0};
  return storage::Catalog::FromEntities({std::move(users)});
}

loader::CachedRows UserRow(int64_t id) {
  return std::make_shared<const std::vector<storage::Row>>(
      std::vector<storage::Row>{storage::Row{
          id, absl::StrCat("name", id), absl::StrCat("surname", id),
          absl::StrCat("user", id, "@example.com"),
          storage::Timestamp{1700000000000000 + id}, id * 7}});
}

// A primed cache of `keys` users, as the bench's rowgate_cached holds them.
struct PrimedCache {
  explicit PrimedCache(int keys)
      : catalog(Users()),
        users(catalog->Find("users")),
        cache({.max_bytes = size_t{8} << 30,
               .encode_row = service::EncodeRowWithAllColumns}) {
    cache.Enable(users);
    cache.OnLive(1);
    for (int id = 1; id <= keys; ++id) {
      key_texts.push_back(absl::StrCat(id));
      Require(cache.Install(cache.BeginFill(), *users, key_texts.back(),
                            UserRow(id)),
              "a fill was refused");
    }
    // Visit keys in a random order fixed in advance: the generator's own
    // cost stays out of the loop.
    std::mt19937_64 random(42);
    std::uniform_int_distribution<int> pick(0, keys - 1);
    order.resize(1 << 20);
    for (int& i : order) i = pick(random);
  }
  std::shared_ptr<const storage::Catalog> catalog;
  const storage::Entity* users;
  loader::RowCache cache;
  std::vector<std::string> key_texts;
  std::vector<int> order;
};

void BM_CacheLookup(benchmark::State& state) {
  PrimedCache primed(static_cast<int>(state.range(0)));
  size_t next = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string& key = primed.key_texts[primed.order[next]];
    next = (next + 1) & (primed.order.size() - 1);
    loader::CachedEntry entry;
    Require(primed.cache.Lookup(*primed.users, key, &entry) ==
                loader::RowCache::Answer::kRows,
            "a primed key missed");
    // The answer reads the encoding (FillResponse copies it).
    const absl::string_view wire = entry.wire();
    bytes += static_cast<unsigned char>(wire[wire.size() / 2]);
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations());
  // What an entry costs against --cache_max_bytes.
  const loader::RowCacheStats stats = primed.cache.Stats();
  state.counters["bytes_per_entry"] =
      static_cast<double>(stats.bytes) / static_cast<double>(stats.entries);
}
BENCHMARK(BM_CacheLookup)->Arg(1 << 14)->Arg(1 << 20);

// Never asked: every key is cached.
class NoDatabase : public loader::BatchExecutor {
 public:
  void Run(Task) override {
    Require(false, "a cached key went to the database");
  }
};

void BM_LoaderCacheHit(benchmark::State& state) {
  PrimedCache primed(static_cast<int>(state.range(0)));
  NoDatabase executor;
  loader::Loader loader({.cache = &primed.cache}, executor);
  size_t next = 0;
  size_t answered = 0;
  for (auto _ : state) {
    loader::LoadRequest request{primed.users,
                                primed.users->primary_key,
                                {primed.key_texts[primed.order[next]]}};
    next = (next + 1) & (primed.order.size() - 1);
    loader.Load(std::move(request),
                [&answered](absl::StatusOr<loader::LoadResult> result) {
                  Require(result.ok() && result->wire_per_key.size() == 1 &&
                              !result->wire_per_key[0].empty(),
                          "a cached key was not answered with its encoding");
                  answered += result->wire_per_key[0].size();
                });
  }
  benchmark::DoNotOptimize(answered);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LoaderCacheHit)->Arg(1 << 14)->Arg(1 << 20);

}  // namespace
}  // namespace rowgate

BENCHMARK_MAIN();
