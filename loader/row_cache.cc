#include "loader/row_cache.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>
#include <variant>

#include "absl/hash/hash.h"
#include "absl/numeric/bits.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rowgate::loader {
namespace {

// What malloc adds to each allocation (glibc: a 16-byte header/rounding on
// 64-bit), counted so that many small entries cannot exceed the bound.
constexpr size_t kAllocOverhead = 16;
// libstdc++ keeps strings of up to 15 bytes inside the object.
constexpr size_t kSsoCapacity = 15;
// A slot of the key map is a pointer plus a control byte; the table's load
// factor lies between 7/16 and 7/8, so count twice the slot.
constexpr size_t kTableBytesPerEntry = 2 * (sizeof(void*) + 1);

size_t StringHeapBytes(size_t capacity) {
  return capacity > kSsoCapacity ? capacity + 1 + kAllocOverhead : 0;
}

size_t ValueHeapBytes(const storage::Value& value) {
  if (const auto* s = std::get_if<std::string>(&value)) {
    return StringHeapBytes(s->capacity());
  }
  if (const auto* b = std::get_if<storage::Bytes>(&value)) {
    return StringHeapBytes(b->data.capacity());
  }
  return 0;
}

size_t RowsBytes(const CachedRows& rows) {
  if (rows == nullptr) return 0;
  // make_shared's one allocation: control block and the vector object.
  size_t bytes = sizeof(std::vector<storage::Row>) + 2 * sizeof(long) +
                 sizeof(void*) + kAllocOverhead;
  if (rows->capacity() > 0) {
    bytes += rows->capacity() * sizeof(storage::Row) + kAllocOverhead;
  }
  for (const storage::Row& row : *rows) {
    if (row.capacity() > 0) {
      bytes += row.capacity() * sizeof(storage::Value) + kAllocOverhead;
    }
    for (const storage::Value& value : row) bytes += ValueHeapBytes(value);
  }
  return bytes;
}

// Whether rows read for `a` can be served as rows of `b`: the same columns,
// in the same order, of the same types, with the same key.
bool SameShape(const storage::Entity& a, const storage::Entity& b) {
  if (a.columns.size() != b.columns.size() || a.key_columns != b.key_columns ||
      a.oid != b.oid) {
    return false;
  }
  for (size_t i = 0; i < a.columns.size(); ++i) {
    const storage::Column& x = a.columns[i];
    const storage::Column& y = b.columns[i];
    if (x.name != y.name || x.type_name != y.type_name || x.type != y.type ||
        x.deterministic_collation != y.deterministic_collation) {
      return false;
    }
  }
  return true;
}

size_t RoundUpToPowerOfTwo(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

void row_cache_internal::Block::Unref(Block* block) {
  if (block->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  block->~Block();
  ::operator delete(block);
}

namespace {

// A block for `key` holding `rows` and `wire`, with one reference (the
// caller's).
row_cache_internal::Block* NewBlock(uint32_t slot, absl::string_view key,
                                    CachedRows rows, absl::string_view wire) {
  void* memory = ::operator new(sizeof(row_cache_internal::Block) + key.size() +
                                wire.size());
  auto* block = new (memory) row_cache_internal::Block;
  block->key_size = static_cast<uint32_t>(key.size());
  block->wire_size = static_cast<uint32_t>(wire.size());
  block->slot = slot;
  block->rows = std::move(rows);
  char* tail = reinterpret_cast<char*>(block + 1);
  if (!key.empty()) std::memcpy(tail, key.data(), key.size());
  if (!wire.empty()) std::memcpy(tail + key.size(), wire.data(), wire.size());
  return block;
}

}  // namespace

size_t RowCache::EntryBytes(absl::string_view key, const CachedRows& rows,
                            size_t wire_bytes) {
  // The block (with its key and encoding), its slot in the map, and the
  // rows (make_shared's control block, the vector and its values).
  return sizeof(Block) + key.size() + wire_bytes + kAllocOverhead +
         kTableBytesPerEntry + RowsBytes(rows);
}

std::string RowCache::Encode(const storage::Entity& entity,
                             const CachedRows& rows) const {
  if (!encode_row_ || rows == nullptr || rows->size() != 1) return {};
  return encode_row_(entity, rows->front());
}

RowCache::RowCache(Options options)
    : max_bytes_(options.max_bytes),
      encode_row_(std::move(options.encode_row)) {
  const size_t shards =
      RoundUpToPowerOfTwo(static_cast<size_t>(std::max(1, options.shards)));
  shard_mask_ = shards - 1;
  // The shard is the hash's top log2(shards) bits (none for one shard).
  const int shard_bits = absl::countr_zero(shards);
  shard_shift_ = shard_bits == 0 ? 0 : 64 - shard_bits;
  const double reserve = std::clamp(options.allocator_reserve, 0.0, 0.5);
  const size_t for_entries =
      max_bytes_ -
      static_cast<size_t>(static_cast<double>(max_bytes_) * reserve);
  shard_bytes_ = for_entries / shards;
  shards_ = std::make_unique<Shard[]>(shards);
  for (size_t i = 0; i < shards; ++i) {
    Shard& shard = shards_[i];
    storage::MutexLock lock(&shard.mu);
    shard.head.prev = shard.head.next = &shard.head;
  }
  storage::MutexLock lock(&bind_mu_);
  Publish(Binding{});
}

RowCache::~RowCache() {
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    storage::MutexLock lock(&shard.mu);
    for (auto& [slot, map] : shard.maps) {
      for (Block* block : map) Block::Unref(block);
    }
  }
}

absl::Status RowCache::Cacheable(const storage::Entity& entity) {
  if (entity.primary_key < 0 || !storage::IsKeyType(entity.key().type)) {
    return absl::FailedPreconditionError(
        "its primary key cannot be looked up by BatchGet");
  }
  // A text key of a type that matches other spellings (char(n) padding,
  // citext) is cached under the spelling asked, but the change feed names
  // the stored one: an invalidation would miss.
  const storage::Column& key = entity.key();
  if (key.type == storage::ColumnType::kText && key.type_name != "text" &&
      !absl::StartsWith(key.type_name, "character varying")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "its text key type (", key.type_name,
        ") matches other spellings, which the change feed cannot name"));
  }
  if (!key.deterministic_collation) {
    return absl::FailedPreconditionError(
        "its key has a nondeterministic collation: equal keys may be spelled "
        "differently, and the change feed names the stored spelling");
  }
  return absl::OkStatus();
}

void RowCache::Publish(Binding binding) {
  bindings_.push_back(std::make_unique<const Binding>(std::move(binding)));
  binding_.store(bindings_.back().get(), std::memory_order_release);
}

void RowCache::Enable(const storage::Entity* entity) {
  storage::MutexLock lock(&bind_mu_);
  Binding next = *binding_.load(std::memory_order_acquire);
  auto [it, added] = next.by_name.try_emplace(
      entity->name, static_cast<Slot>(slot_names_.size()));
  const Slot slot = it->second;
  if (added) {
    slot_names_.push_back(entity->name);
    slot_oids_.push_back(entity->oid);
    slot_shape_.push_back(entity);
  } else {
    // Another table of that name, or the same one again: no entity of the
    // one before answers from it any more.
    absl::erase_if(next.slots,
                   [slot](const auto& bound) { return bound.second == slot; });
    slot_oids_[slot] = entity->oid;
    slot_shape_[slot] = entity;
  }
  next.slots[entity] = slot;
  Publish(std::move(next));
  // Invalidations of this table before now were dropped (it had no slot,
  // or another table's): fills that may have read before them must not
  // install, and nothing held under the name may answer.
  ClearShards(slot);
}

RowCache::Slot RowCache::SlotNamed(const storage::Entity& entity) const {
  const Binding* binding = binding_.load(std::memory_order_acquire);
  auto it = binding->by_name.find(entity.name);
  return it == binding->by_name.end() ? kNoSlot : it->second;
}

std::vector<std::string> RowCache::Rebind(const storage::Catalog& catalog) {
  storage::MutexLock lock(&bind_mu_);
  Binding next = *binding_.load(std::memory_order_acquire);
  std::vector<Slot> reshaped;
  std::vector<std::string> stopped;
  for (Slot slot = 0; slot < slot_names_.size(); ++slot) {
    const storage::Entity* was = slot_shape_[slot];
    if (was == nullptr) continue;  // stopped for good
    const storage::Entity* now = catalog.Find(slot_names_[slot]);
    if (now == was) continue;
    if (now != nullptr && SameShape(*was, *now)) {
      next.slots[now] = slot;
      continue;
    }
    // Rows cached in the old shape must never answer for the new one:
    // unbind every entity of this table, empty it, then bind the new one.
    absl::erase_if(next.slots,
                   [slot](const auto& bound) { return bound.second == slot; });
    reshaped.push_back(slot);
    absl::Status why;
    if (now == nullptr) {
      why = absl::NotFoundError("the table is gone");
    } else if (now->oid != slot_oids_[slot]) {
      // The change feed's publication named the old table.
      why = absl::FailedPreconditionError(
          "the table was created again (another OID): cached again once the "
          "change feed follows the new table");
    } else {
      why = Cacheable(*now);
    }
    if (why.ok()) {
      slot_shape_[slot] = now;
    } else {
      slot_shape_[slot] = nullptr;
      stopped.push_back(absl::StrCat(slot_names_[slot], ": ", why.message()));
    }
  }
  Publish(next);
  if (reshaped.empty()) return stopped;
  for (Slot slot : reshaped) ClearShards(slot);
  for (Slot slot : reshaped) {
    if (slot_shape_[slot] != nullptr) next.slots[slot_shape_[slot]] = slot;
  }
  Publish(std::move(next));
  return stopped;
}

RowCache::Shard& RowCache::ShardFor(absl::string_view key) {
  // The top bits, not the low ones: the shard's own map (a Swiss table)
  // takes its 7-bit tag from the hash's low bits, and keys that all share
  // their low bits in one shard made nearly every slot of a probed group
  // match the tag, each match one more block read (a cache miss) per
  // lookup. bench/row_cache_bench.cc measures it.
  const uint64_t h = absl::HashOf(key);
  return shards_[(h >> shard_shift_) & shard_mask_];
}

void RowCache::UnlinkLocked(Shard& shard, Block& block) {
  (void)shard;  // named for the lock annotation only
  block.prev->next = block.next;
  block.next->prev = block.prev;
  block.prev = block.next = nullptr;
}

void RowCache::PushFrontLocked(Shard& shard, Block& block) {
  block.next = shard.head.next;
  block.prev = &shard.head;
  shard.head.next->prev = &block;
  shard.head.next = &block;
}

void RowCache::ForgetLocked(Shard& shard, Block* block) {
  UnlinkLocked(shard, *block);
  shard.bytes -= block->bytes;
  --shard.entries;
  Block::Unref(block);
}

void RowCache::RemoveLocked(Shard& shard, KeyMap& map, KeyMap::iterator it) {
  Block* block = *it;
  map.erase(it);
  ForgetLocked(shard, block);
}

RowCache::Answer RowCache::Lookup(const storage::Entity& entity,
                                  absl::string_view key, CachedEntry* entry) {
  if (!live_.load(std::memory_order_acquire)) {
    bypassed_.fetch_add(1, std::memory_order_relaxed);
    return Answer::kUnknown;
  }
  Shard& shard = ShardFor(key);
  storage::MutexLock lock(&shard.mu);
  // Read under the shard's lock: see Rebind.
  const Slot slot = SlotOf(&entity);
  if (slot == kNoSlot) {
    ++shard.misses;
    return Answer::kUnknown;
  }
  auto map = shard.maps.find(slot);
  if (map == shard.maps.end()) {
    ++shard.misses;
    return Answer::kUnknown;
  }
  auto it = map->second.find(key);
  if (it == map->second.end()) {
    ++shard.misses;
    return Answer::kUnknown;
  }
  Block* block = *it;
  block->referenced = true;
  ++shard.hits;
  if (block->rows == nullptr) return Answer::kMissing;
  *entry = CachedEntry(block);
  return Answer::kRows;
}

FillToken RowCache::BeginFill() const {
  FillToken token;
  token.valid = live_.load(std::memory_order_acquire);
  token.seq = seq_.load(std::memory_order_acquire);
  return token;
}

bool RowCache::EraseLocked(Shard& shard, Slot slot, absl::string_view key) {
  auto map = shard.maps.find(slot);
  if (map == shard.maps.end()) return false;
  auto it = map->second.find(key);
  if (it == map->second.end()) return false;
  RemoveLocked(shard, map->second, it);
  return true;
}

bool RowCache::InstallLocked(Shard& shard, Slot slot, absl::string_view key,
                             CachedRows rows, absl::string_view wire) {
  if (rows != nullptr && rows->empty()) rows = nullptr;
  if (rows == nullptr) wire = {};
  EraseLocked(shard, slot, key);
  const size_t bytes = EntryBytes(key, rows, wire.size());
  if (bytes > shard_bytes_) return false;  // more than a whole shard holds
  Block* block = NewBlock(slot, key, std::move(rows), wire);
  block->bytes = bytes;
  shard.maps[slot].insert(block);
  PushFrontLocked(shard, *block);
  shard.bytes += bytes;
  ++shard.entries;
  ++shard.installs;
  // Ends: each pass over a referenced block clears its mark, and nothing
  // sets one while the lock is held.
  while (shard.bytes > shard_bytes_) {
    Block* victim = shard.head.prev;
    if (victim->referenced) {  // its second chance
      victim->referenced = false;
      UnlinkLocked(shard, *victim);
      PushFrontLocked(shard, *victim);
      continue;
    }
    KeyMap& victim_map = shard.maps[victim->slot];
    ++shard.evictions;
    RemoveLocked(shard, victim_map, victim_map.find(victim->key()));
  }
  return true;
}

bool RowCache::Install(const FillToken& token, const storage::Entity& entity,
                       absl::string_view key, CachedRows rows) {
  if (!token.valid) return false;
  // Before the lock: encoding a row is the slow part of an install.
  const std::string wire = Encode(entity, rows);
  Shard& shard = ShardFor(key);
  storage::MutexLock lock(&shard.mu);
  // The binding is read under the shard's lock (see Rebind): rows read in
  // a shape no longer cached are never installed.
  const Slot slot = SlotOf(&entity);
  if (slot == kNoSlot) return false;
  // live_ is read under the shard's lock: OnInterrupted clears this shard
  // after setting it false, so an install that saw true is cleared then.
  if (!live_.load(std::memory_order_acquire) ||
      shard.last_invalidation > token.seq) {
    ++shard.refused;
    return false;
  }
  return InstallLocked(shard, slot, key, std::move(rows), wire);
}

void RowCache::PutWritten(const FillToken& token, const storage::Entity& entity,
                          absl::string_view key, CachedRows rows) {
  const Slot named = SlotNamed(entity);
  if (named == kNoSlot) return;
  const std::string wire = token.valid ? Encode(entity, rows) : std::string();
  Shard& shard = ShardFor(key);
  storage::MutexLock lock(&shard.mu);
  // Another invalidation since the write began may be a later commit of the
  // same key: the written row could be older than it, so only forget.
  const bool superseded = shard.last_invalidation > token.seq;
  if (EraseLocked(shard, named, key)) ++shard.invalidations;
  // Fills in flight may have read the row before this write: refuse them.
  shard.last_invalidation = NextSeq();
  if (!token.valid || superseded || !live_.load(std::memory_order_acquire) ||
      SlotOf(&entity) != named) {
    ++shard.refused;
    return;
  }
  InstallLocked(shard, named, key, std::move(rows), wire);
}

void RowCache::Invalidate(const storage::Entity& entity,
                          const std::vector<std::string>& keys) {
  InvalidateSlot(SlotNamed(entity), keys);
}

void RowCache::InvalidateSlot(Slot slot, const std::vector<std::string>& keys) {
  if (slot == kNoSlot) return;
  for (const std::string& key : keys) {
    Shard& shard = ShardFor(key);
    storage::MutexLock lock(&shard.mu);
    // The sequence number is taken under the shard's lock, so a fill's
    // capture either precedes it (and is refused) or follows it (and its
    // statement sees the commit this invalidation announces).
    shard.last_invalidation = NextSeq();
    if (EraseLocked(shard, slot, key)) ++shard.invalidations;
  }
}

void RowCache::ClearShards(Slot slot) {
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    storage::MutexLock lock(&shard.mu);
    shard.last_invalidation = NextSeq();
    for (auto map = shard.maps.begin(); map != shard.maps.end();) {
      if (slot != kNoSlot && map->first != slot) {
        ++map;
        continue;
      }
      for (Block* block : map->second) {
        ++shard.invalidations;
        ForgetLocked(shard, block);
      }
      shard.maps.erase(map++);
    }
  }
}

void RowCache::ClearEntity(const storage::Entity& entity) {
  const Slot slot = SlotNamed(entity);
  if (slot != kNoSlot) ClearShards(slot);
}

void RowCache::ClearAll() { ClearShards(kNoSlot); }

void RowCache::OnCommit(storage::Lsn commit_lsn,
                        const std::vector<storage::ChangedKeys>& changes) {
  for (const storage::ChangedKeys& change : changes) {
    if (change.entity != nullptr) Invalidate(*change.entity, change.keys);
  }
  storage::Lsn applied = applied_lsn_.load(std::memory_order_relaxed);
  while (commit_lsn > applied &&
         !applied_lsn_.compare_exchange_weak(applied, commit_lsn,
                                             std::memory_order_relaxed)) {
  }
}

void RowCache::OnTruncate(storage::Lsn lsn, const storage::Entity& entity) {
  ClearEntity(entity);
  storage::Lsn applied = applied_lsn_.load(std::memory_order_relaxed);
  while (lsn > applied && !applied_lsn_.compare_exchange_weak(
                              applied, lsn, std::memory_order_relaxed)) {
  }
}

void RowCache::OnInterrupted(const absl::Status& /*why*/) {
  // Stop answering first, then forget: a lookup between the two misses.
  live_.store(false, std::memory_order_release);
  interruptions_.fetch_add(1, std::memory_order_relaxed);
  ClearAll();
}

void RowCache::OnLive(storage::Lsn lsn) {
  // Fills captured before now may have read a snapshot older than what the
  // feed has vouched for since its restart: refuse them.
  ClearAll();
  live_lsn_.store(lsn, std::memory_order_relaxed);
  storage::Lsn applied = applied_lsn_.load(std::memory_order_relaxed);
  while (lsn > applied && !applied_lsn_.compare_exchange_weak(
                              applied, lsn, std::memory_order_relaxed)) {
  }
  live_.store(true, std::memory_order_release);
}

RowCacheStats RowCache::Stats() const {
  RowCacheStats s;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& shard = shards_[i];
    storage::MutexLock lock(&shard.mu);
    s.hits += shard.hits;
    s.misses += shard.misses;
    s.installs += shard.installs;
    s.refused_installs += shard.refused;
    s.evictions += shard.evictions;
    s.invalidations += shard.invalidations;
    s.bytes += shard.bytes;
    s.entries += shard.entries;
  }
  s.misses += bypassed_.load(std::memory_order_relaxed);
  s.max_bytes = max_bytes_;
  s.live = live_.load(std::memory_order_acquire);
  s.live_lsn = live_lsn_.load(std::memory_order_relaxed);
  s.applied_lsn = applied_lsn_.load(std::memory_order_relaxed);
  s.interruptions = interruptions_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace rowgate::loader
