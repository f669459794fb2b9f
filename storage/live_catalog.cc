#include "storage/live_catalog.h"

#include <utility>

#include "absl/time/clock.h"

namespace rowgate::storage {
namespace {

// A digest of every catalog row Catalog::Load reads for the schema: its
// tables, their live columns (name, type, nullability, defaults), their
// indexes and constraints. Any DDL that changes what rowgate serves changes
// it; reading pg_catalog needs no grant beyond CONNECT.
constexpr char kFingerprintSql[] = R"sql(
SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')) FROM (
  SELECT concat_ws(':', 'a', c.oid, c.relname, c.relkind, a.attnum, a.attname,
                   a.atttypid, a.atttypmod, a.attnotnull, a.atthasdef,
                   a.attidentity, a.attgenerated) AS x
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                     AND NOT a.attisdropped
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
  UNION ALL
  SELECT concat_ws(':', 'i', i.indexrelid, i.indrelid, i.indkey::text,
                   i.indisunique, i.indisprimary, i.indisvalid,
                   i.indpred IS NULL, i.indexprs IS NULL, ic.relname)
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  WHERE n.nspname = $1
  UNION ALL
  SELECT concat_ws(':', 'k', k.oid, k.conname, k.contype, k.conrelid,
                   k.confrelid, k.conkey::text, k.confkey::text)
  FROM pg_constraint k
  JOIN pg_namespace n ON n.oid = k.connamespace
  WHERE n.nspname = $1
) s)sql";

}  // namespace

LiveCatalog::LiveCatalog(std::shared_ptr<const Catalog> fixed)
    : live_(false), current_(std::move(fixed)) {}

LiveCatalog::LiveCatalog(std::shared_ptr<const Catalog> initial,
                         Options options)
    : options_(std::move(options)), live_(true), current_(std::move(initial)) {
  conn_ = std::make_unique<Connection>(options_.database_url, nullptr,
                                       options_.timeouts);
  thread_ = std::thread([this] { Run(); });
}

LiveCatalog::~LiveCatalog() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  changed_.SignalAll();
  if (conn_ != nullptr) conn_->Interrupt();
  if (!thread_.joinable()) return;
  // The last holder may be the schema-error hook, called on the poller.
  if (std::this_thread::get_id() == thread_.get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

std::shared_ptr<const Catalog> LiveCatalog::Current() const {
  MutexLock lock(&mu_);
  return current_;
}

uint64_t LiveCatalog::generation() const {
  MutexLock lock(&mu_);
  return generation_;
}

void LiveCatalog::RefreshNow(absl::Duration timeout) {
  // The poller's own statements must not wait for the poller.
  if (!live_ || std::this_thread::get_id() == thread_.get_id()) return;
  const absl::Time until = absl::Now() + timeout;
  MutexLock lock(&mu_);
  // A check already running may have read the catalog before the change:
  // wait for one that starts after now.
  const uint64_t wanted = checks_started_ + 1;
  wake_ = true;
  force_ = true;  // a statement failed on the catalog: reload whatever
  changed_.SignalAll();
  while (!stopping_ && checks_done_ < wanted) {
    if (!changed_.WaitWithDeadline(&mu_, until)) return;
  }
}

void LiveCatalog::PollOnce(Connection& conn, bool force) {
  absl::StatusOr<QueryResult> digest =
      conn.Execute(kFingerprintSql, {options_.schema});
  if (!digest.ok() || digest->rows() != 1) {
    if (options_.on_error) {
      options_.on_error(digest.ok() ? absl::InternalError("no fingerprint")
                                    : digest.status());
    }
    return;
  }
  const std::string fingerprint(digest->text(0, 0));
  {
    MutexLock lock(&mu_);
    if (fingerprint == fingerprint_ && !force) return;
    if (fingerprint_.empty() && !force) {
      // The first check only learns the digest: the catalog served was read
      // at start, and its Entity pointers stay (the row cache enabled
      // them). A DDL between that read and this check is seen at the next
      // change, or when a statement fails on it (RefreshNow forces a
      // reload).
      fingerprint_ = fingerprint;
      return;
    }
  }
  absl::StatusOr<std::shared_ptr<const Catalog>> catalog =
      Catalog::Load(conn, options_.schema, options_.version_column);
  if (!catalog.ok()) {
    if (options_.on_error) options_.on_error(catalog.status());
    return;
  }
  {
    MutexLock lock(&mu_);
    retired_.push_back(std::move(current_));
    current_ = *catalog;
    fingerprint_ = fingerprint;
    ++generation_;
  }
  InvalidatePreparedStatements();
  if (options_.on_reload) options_.on_reload(*catalog);
}

void LiveCatalog::Run() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    const uint64_t check = ++checks_started_;
    wake_ = false;
    const bool force = force_;
    force_ = false;
    mu_.Unlock();
    PollOnce(*conn_, force);
    mu_.Lock();
    checks_done_ = check;
    changed_.SignalAll();
    const absl::Time until = options_.interval > absl::ZeroDuration()
                                 ? absl::Now() + options_.interval
                                 : absl::InfiniteFuture();
    while (!stopping_ && !wake_ && changed_.WaitWithDeadline(&mu_, until)) {
    }
  }
}

}  // namespace rowgate::storage
