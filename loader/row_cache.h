// RowCache: a byte-bounded, sharded cache of primary-key rows shared by
// every caller of the loader, kept coherent with PostgreSQL by a change feed
// (storage::ChangeListener) and by rowgate's own writes.
//
// Entries are keyed by (entity, canonical key text) and hold either the
// immutable row (shared with every answer that uses it) or "known missing"
// (a key with no row is an answer too). An entry is one block: its key, its
// row's encoding (Options::encode_row), its eviction links and a reference
// count, so that a hit touches the block it compares the key in and
// nothing else (no separate node, no shared_ptr control blocks): on a cache
// far larger than the CPU's, each of those was one more miss per key. Each
// shard has its own mutex and a second-chance (CLOCK) list, an
// approximation of LRU: installs evict from
// the list's old end until the shard's accounted bytes (keys' and values'
// heap capacity, block and table overhead) are under the shard's share of
// max_bytes (less Options::allocator_reserve), whatever the key
// distribution, and an entry looked up since it last came
// round is passed over once (moved to the new end, its mark cleared). A hit
// only sets that mark: it does not relink the entry, which on a hot cache
// cost two more cache misses per key (the neighbours) under the shard lock.
//
// The fill protocol, which keeps a fetch that raced an invalidation from
// installing what it read: a fill captures a FillToken (the invalidation
// sequence number) BEFORE its statement is sent, and Install() refuses it
// when its shard saw an invalidation since then, when the feed was
// interrupted or went live again since, or while the feed is not live. An
// invalidation that arrives after an install removes the entry as usual, so
// a fetch whose snapshot predates a commit is gone once that commit's
// invalidation arrives (staleness bounded by the feed's lag).
//
// The cache starts not live: until OnLive every Lookup misses and every
// Install is refused, i.e. rowgate behaves as without a cache.
//
// Entities are cached by table, not by catalog object: after a schema
// reload (storage::LiveCatalog) Rebind() maps the new catalog's entities
// onto the tables cached. A table whose shape did not change keeps its
// entries; one whose columns changed is emptied first (its cached rows have
// the old shape) and then cached in the new shape; one dropped, created
// again (another OID, so not in the feed's publication) or no longer
// cacheable stops being cached. Invalidations find their table by name, so
// the feed's entities (from the start-up catalog) reach the entries
// whatever catalog filled them.
//
// Thread-safe; no method blocks beyond a shard's mutex (ClearAll,
// OnInterrupted, Enable and a Rebind that changes a shape take each shard's
// in turn). The entities it is given must outlive it.
//
// Example:
//   RowCache cache({.max_bytes = 64 << 20});
//   cache.Enable(users);
//   FillToken token = cache.BeginFill();
//   ... fetch rows for keys (the statement is sent after BeginFill) ...
//   cache.Install(token, *users, key, rows_or_nullptr);
#ifndef ROWGATE_LOADER_ROW_CACHE_H_
#define ROWGATE_LOADER_ROW_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/catalog.h"
#include "storage/change_listener.h"
#include "storage/mutex.h"
#include "storage/value.h"

namespace rowgate::loader {

// The rows a primary key has: one, shared by every answer that uses it.
using CachedRows = std::shared_ptr<const std::vector<storage::Row>>;

namespace row_cache_internal {
// One entry (see RowCache), allocated with its key's and its encoding's
// bytes right behind it. What every hit reads or writes comes first.
struct Block {
  std::atomic<uint32_t> refs{1};  // the shard's map holds one
  uint32_t key_size = 0;
  uint32_t wire_size = 0;
  // Looked up since installed or since eviction last passed it over (the
  // shard's mutex guards it). A new entry is not: one never looked up
  // again goes first.
  bool referenced = false;
  uint32_t slot = 0;      // RowCache::Slot
  size_t bytes = 0;       // accounted
  Block* prev = nullptr;  // the second-chance list, towards the newer end
  Block* next = nullptr;
  CachedRows rows;  // null: known missing

  const char* tail() const { return reinterpret_cast<const char*>(this + 1); }
  absl::string_view key() const { return {tail(), key_size}; }
  absl::string_view wire() const { return {tail() + key_size, wire_size}; }
  // Drops one reference; the last one frees the block.
  static void Unref(Block* block);
};
}  // namespace row_cache_internal

// A held cache entry: its rows and encoding stay valid while it is held,
// even once the cache has evicted or invalidated it. Copying takes one
// atomic increment on the block the lookup already read. Not thread-safe
// itself (one owner at a time); the entry it holds is immutable.
class CachedEntry {
 public:
  CachedEntry() = default;
  CachedEntry(const CachedEntry& other) : block_(other.block_) {
    if (block_ != nullptr) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  CachedEntry(CachedEntry&& other) noexcept
      : block_(std::exchange(other.block_, nullptr)) {}
  CachedEntry& operator=(CachedEntry other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~CachedEntry() {
    if (block_ != nullptr) row_cache_internal::Block::Unref(block_);
  }

  bool held() const { return block_ != nullptr; }
  // Null: nothing held, or the key is known missing.
  const std::vector<storage::Row>* rows() const {
    return block_ == nullptr ? nullptr : block_->rows.get();
  }
  // The row's encoding (Options::encode_row); empty when it has none.
  absl::string_view wire() const {
    return block_ == nullptr ? absl::string_view() : block_->wire();
  }

 private:
  friend class RowCache;
  // Takes one more reference to `block`.
  explicit CachedEntry(row_cache_internal::Block* block) : block_(block) {
    block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  row_cache_internal::Block* block_ = nullptr;
};

// Encodes one row of an entity; see Options::encode_row.
using RowEncoder =
    std::function<std::string(const storage::Entity&, const storage::Row&)>;

struct RowCacheStats {
  uint64_t hits = 0;    // keys answered from the cache (rows or missing)
  uint64_t misses = 0;  // keys of cached entities that went to PostgreSQL
  uint64_t installs = 0;
  uint64_t refused_installs = 0;  // fills that raced an invalidation
  uint64_t evictions = 0;
  uint64_t invalidations = 0;  // keys invalidated (feed, writes, clears)
  uint64_t bytes = 0;          // accounted bytes held now
  uint64_t entries = 0;
  uint64_t max_bytes = 0;
  bool live = false;
  storage::Lsn live_lsn = 0;     // LSN of the last OnLive
  storage::Lsn applied_lsn = 0;  // latest commit LSN applied
  uint64_t interruptions = 0;
};

// Captured before a fill's statement is sent; see the protocol above.
struct FillToken {
  uint64_t seq = 0;
  bool valid = false;  // false: the feed was not live; nothing will install
};

class RowCache final : public storage::ChangeListener {
 public:
  struct Options {
    size_t max_bytes = 64 << 20;
    // Rounded up to a power of two. More shards: less contention and fewer
    // fills refused by an unrelated key's invalidation.
    int shards = 64;
    // The part of max_bytes kept free of entries, so that the memory the
    // cache costs the process stays within max_bytes: under churn malloc
    // keeps some freed space (spread over its per-thread arenas) that the
    // accounting cannot see, and an evicted entry lives on while an answer
    // being sent holds it. Measured in `make bench` with zipfian keys: about
    // 1-2% of the bound. 0: entries are accounted up to max_bytes (tests).
    double allocator_reserve = 1.0 / 16;
    // Null, or how answers carry a row in their default form (for rowgate:
    // a serialized rowgate.v1.Row with every column). With it, each entry
    // of one row also holds its encoding, made once when it is installed,
    // so a hit's answer need not build the row again; its bytes count
    // towards max_bytes. Called on the installing thread, outside every
    // lock; must be thread-safe.
    RowEncoder encode_row;
  };

  explicit RowCache(Options options);
  ~RowCache() override;
  RowCache(const RowCache&) = delete;
  RowCache& operator=(const RowCache&) = delete;

  // Why `entity` cannot be cached coherently, or OK. Only single-column
  // keys a lookup can use, whose every spelling the change feed names as
  // the lookups do: no char(n), citext or other text-like type, no
  // nondeterministic collation (the feed names the stored 'AB' where the
  // cache holds the asked 'ab').
  static absl::Status Cacheable(const storage::Entity& entity);

  // Caches `entity` (primary-key lookups only; Cacheable() must be OK), a
  // table the change feed follows from now on: at start-up, or later for a
  // table created (or created again) while rowgate runs. Takes the place of
  // an earlier table of the same name, whose entries are dropped; fills
  // captured before the call are refused. Thread-safe (one Enable or
  // Rebind at a time); blocks only on the shards' mutexes.
  void Enable(const storage::Entity* entity);
  // Whether lookups of `entity` (of any catalog Rebind was given) are
  // cached now. Never blocks.
  bool Caches(const storage::Entity* entity) const {
    return SlotOf(entity) != kNoSlot;
  }

  // Binds the cached tables to `catalog`'s entities after a schema reload
  // (see above); entities of earlier catalogs stay bound only where their
  // shape is the new one. Returns the names of tables no longer cached,
  // each with the reason. Called by one thread at a time (the catalog's
  // poller); `catalog` must outlive the cache.
  std::vector<std::string> Rebind(const storage::Catalog& catalog);

  // What the cache knows of one key.
  enum class Answer { kUnknown, kRows, kMissing };
  // kRows holds the entry in `*entry` (its rows, and its encoding if it has
  // one: Options::encode_row). kUnknown for an entity not cached, a key not
  // held, or while the feed is not live. Counts a hit or a miss. Never
  // blocks.
  Answer Lookup(const storage::Entity& entity, absl::string_view key,
                CachedEntry* entry);

  // Captures the invalidation sequence: call before the fill's statement
  // is sent.
  FillToken BeginFill() const;
  // Installs what a fill read for `key` (`rows` null or empty: missing)
  // unless an invalidation that may concern it came since `token`. Returns
  // whether it was installed.
  bool Install(const FillToken& token, const storage::Entity& entity,
               absl::string_view key, CachedRows rows);
  // A write through rowgate committed `rows` for `key` (e.g. a row returned
  // by UPDATE ... RETURNING) as of a statement started after `token`:
  // invalidates `key` (so no fill in flight installs an older row) and
  // installs the written row unless another invalidation came since `token`.
  void PutWritten(const FillToken& token, const storage::Entity& entity,
                  absl::string_view key, CachedRows rows);

  // Forgets keys; fills in flight for them (and their shard) are refused.
  void Invalidate(const storage::Entity& entity,
                  const std::vector<std::string>& keys);
  // Forgets every key of `entity`.
  void ClearEntity(const storage::Entity& entity);
  // Forgets everything.
  void ClearAll();

  // storage::ChangeListener (called by the feed's thread).
  void OnCommit(storage::Lsn commit_lsn,
                const std::vector<storage::ChangedKeys>& changes) override;
  void OnTruncate(storage::Lsn lsn, const storage::Entity& entity) override;
  void OnInterrupted(const absl::Status& why) override;
  void OnLive(storage::Lsn lsn) override;

  bool live() const { return live_.load(std::memory_order_acquire); }
  RowCacheStats Stats() const;

  // The bytes an entry for `key` holding `rows` (and an encoding of
  // `wire_bytes`) is accounted (for tests).
  static size_t EntryBytes(absl::string_view key, const CachedRows& rows,
                           size_t wire_bytes = 0);

 private:
  // A cached table's index into slot_names_.
  using Slot = uint32_t;
  static constexpr Slot kNoSlot = ~Slot{0};
  // Which catalog entities are cached, as which table. Immutable once
  // published; every one published is kept until the cache is destroyed
  // (a few per migration), so a reader never waits for a writer.
  struct Binding {
    absl::flat_hash_map<const storage::Entity*, Slot> slots;
    // Every table ever cached, by name (invalidations find theirs here).
    absl::flat_hash_map<std::string, Slot> by_name;
  };

  using Block = row_cache_internal::Block;
  // Finds blocks by their key (heterogeneous lookup by string_view).
  struct BlockKeyHash {
    using is_transparent = void;
    size_t operator()(absl::string_view key) const { return absl::HashOf(key); }
    size_t operator()(const Block* block) const {
      return absl::HashOf(block->key());
    }
  };
  struct BlockKeyEq {
    using is_transparent = void;
    static absl::string_view KeyOf(absl::string_view key) { return key; }
    static absl::string_view KeyOf(const Block* block) { return block->key(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return KeyOf(a) == KeyOf(b);
    }
  };
  // Holds one reference to each block in it.
  using KeyMap = absl::flat_hash_set<Block*, BlockKeyHash, BlockKeyEq>;
  struct Shard {
    storage::Mutex mu;
    absl::flat_hash_map<Slot, KeyMap> maps ABSL_GUARDED_BY(mu);
    Block head ABSL_GUARDED_BY(mu);  // sentinel of the second-chance list
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    size_t entries ABSL_GUARDED_BY(mu) = 0;
    // The sequence number of the latest invalidation that touched this
    // shard: fills captured before it are refused.
    uint64_t last_invalidation ABSL_GUARDED_BY(mu) = 0;
    // Counted under the lock already held, not in shared atomics that
    // every hit would bounce between cores.
    uint64_t hits ABSL_GUARDED_BY(mu) = 0;
    uint64_t misses ABSL_GUARDED_BY(mu) = 0;
    uint64_t installs ABSL_GUARDED_BY(mu) = 0;
    uint64_t refused ABSL_GUARDED_BY(mu) = 0;
    uint64_t evictions ABSL_GUARDED_BY(mu) = 0;
    uint64_t invalidations ABSL_GUARDED_BY(mu) = 0;
  };

  // The encoding of `rows` when it is one row and there is an encoder;
  // else empty.
  std::string Encode(const storage::Entity& entity,
                     const CachedRows& rows) const;
  // Shards by key only: a shard's lock then also orders a reader's look at
  // the binding against Rebind's clearing of that shard.
  Shard& ShardFor(absl::string_view key);
  // The table `entity` is cached as now, or kNoSlot.
  Slot SlotOf(const storage::Entity* entity) const {
    const Binding* binding = binding_.load(std::memory_order_acquire);
    auto it = binding->slots.find(entity);
    return it == binding->slots.end() ? kNoSlot : it->second;
  }
  // The table named like `entity`, bound or not (invalidations), or kNoSlot.
  Slot SlotNamed(const storage::Entity& entity) const;
  void Publish(Binding binding) ABSL_EXCLUSIVE_LOCKS_REQUIRED(bind_mu_);
  uint64_t NextSeq() {
    return seq_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  // Removes `key`'s entry, if any; returns whether there was one.
  bool EraseLocked(Shard& shard, Slot slot, absl::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Takes `block`, already out of its map, out of the shard's list and
  // accounting, and drops the map's reference.
  void ForgetLocked(Shard& shard, Block* block)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Takes the block at `it` out of `map`, then forgets it.
  void RemoveLocked(Shard& shard, KeyMap& map, KeyMap::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void UnlinkLocked(Shard& shard, Block& block)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void PushFrontLocked(Shard& shard, Block& block)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  bool InstallLocked(Shard& shard, Slot slot, absl::string_view key,
                     CachedRows rows, absl::string_view wire)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Empties every shard (all tables, or only `slot`) and refuses fills
  // captured before now.
  void ClearShards(Slot slot);
  void InvalidateSlot(Slot slot, const std::vector<std::string>& keys);

  const size_t max_bytes_;
  const RowEncoder encode_row_;
  size_t shard_bytes_ = 0;
  size_t shard_mask_ = 0;
  // Shifts the key's hash down to its shard bits (see ShardFor).
  int shard_shift_ = 0;
  std::unique_ptr<Shard[]> shards_;
  storage::Mutex bind_mu_;
  // Per slot: the table's name (unquoted, as Catalog::Find takes it) and
  // OID (the latest table of that name Enable was given).
  std::vector<std::string> slot_names_ ABSL_GUARDED_BY(bind_mu_);
  std::vector<uint32_t> slot_oids_ ABSL_GUARDED_BY(bind_mu_);
  std::vector<std::unique_ptr<const Binding>> bindings_
      ABSL_GUARDED_BY(bind_mu_);
  // Per slot: the entity whose shape its entries have; null once the table
  // is no longer cached.
  std::vector<const storage::Entity*> slot_shape_ ABSL_GUARDED_BY(bind_mu_);
  std::atomic<const Binding*> binding_{nullptr};

  std::atomic<uint64_t> seq_{1};
  std::atomic<bool> live_{false};
  std::atomic<storage::Lsn> live_lsn_{0};
  std::atomic<storage::Lsn> applied_lsn_{0};
  std::atomic<uint64_t> interruptions_{0};

  // Lookups answered kUnknown without a shard (not live).
  std::atomic<uint64_t> bypassed_{0};
};

}  // namespace rowgate::loader

#endif  // ROWGATE_LOADER_ROW_CACHE_H_
