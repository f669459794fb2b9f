#include "storage/change_feed.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "storage/feed_liveness.h"
#include "storage/mutex.h"
#include "storage/pg_async.h"
#include "storage/pgoutput.h"
#include "storage/replication_setup.h"

namespace rowgate::storage {
namespace {

// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
constexpr int64_t kPgEpochMicros = 946684800LL * 1000000;
// A committed transaction that writes WAL and nothing else (see Stream).
constexpr char kNudgeSql[] =
    "SELECT pg_logical_emit_message(true, 'rowgate_change_feed', '')";

bool IsNameChars(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') {
      return false;
    }
  }
  return true;
}

void PutInt64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

uint64_t GetInt64(absl::string_view data, size_t at) {
  uint64_t v = 0;
  for (size_t i = at; i < at + 8; ++i) {
    v = (v << 8) | static_cast<unsigned char>(data[i]);
  }
  return v;
}

std::string SqlLiteral(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace

// Everything below runs on one thread at a time: Create's caller until
// Start(), then the feed's thread. Only stats_ is shared (under mu_).
class ChangeFeed::Impl : public ChangeListener {
 public:
  Impl(ChangeFeed::Options options, std::string conninfo,
       std::shared_ptr<const Catalog> catalog,
       std::vector<const Entity*> entities, ChangeListener* listener,
       int wake_fd)
      : options_(std::move(options)),
        conninfo_(std::move(conninfo)),
        catalog_(std::move(catalog)),
        entities_(std::move(entities)),
        listener_(listener),
        wake_fd_(wake_fd),
        decoder_(entities_, this),
        liveness_({.max_lag = options_.max_lag,
                   .max_lag_bytes = options_.max_lag_bytes}) {
    BuildProbe();
  }
  ~Impl() override { close(wake_fd_); }

  // Opens both connections, checks the database, ensures the publication
  // and creates a slot.
  absl::Status Connect();
  // The feed's thread: streams, reconnecting with backoff, until stopped.
  void Run();
  void RequestStop() {
    const uint64_t one = 1;
    // The eventfd stays readable from now on: every wait sees it.
    if (write(wake_fd_, &one, sizeof one) < 0) {
      // Only EAGAIN (counter full) is possible, and then it is readable.
    }
  }
  void CloseConnections() {
    control_.reset();
    replication_.reset();
    MutexLock lock(&mu_);
    stats_.connected = false;
  }
  ChangeFeedStats Stats() {
    MutexLock lock(&mu_);
    return stats_;
  }

  // Start and Stop may come from any thread.
  Mutex lifecycle_mu;
  std::thread thread ABSL_GUARDED_BY(lifecycle_mu);
  bool started ABSL_GUARDED_BY(lifecycle_mu) = false;
  bool stopped ABSL_GUARDED_BY(lifecycle_mu) = false;

  // The decoder's listener: counts, then forwards.
  void OnCommit(Lsn commit_lsn,
                const std::vector<ChangedKeys>& changes) override {
    listener_->OnCommit(commit_lsn, changes);
    MutexLock lock(&mu_);
    stats_.applied_lsn = commit_lsn;
    ++stats_.transactions;
  }
  void OnTruncate(Lsn lsn, const Entity& entity) override {
    listener_->OnTruncate(lsn, entity);
    MutexLock lock(&mu_);
    stats_.applied_lsn = lsn;
  }
  void OnInterrupted(const absl::Status&) override {}
  void OnLive(Lsn) override {}

  void Follow(std::shared_ptr<const Catalog> catalog,
              std::vector<const Entity*> entities, FollowDone done) {
    MutexLock lock(&mu_);
    follow_requests_.push_back(
        {std::move(catalog), std::move(entities), std::move(done)});
  }

 private:
  enum class ControlQuery { kNone, kProbe, kNudge };
  struct FollowRequest {
    std::shared_ptr<const Catalog> catalog;
    std::vector<const Entity*> entities;
    FollowDone done;
  };

  // The probe: the server's WAL position, and whether the publication
  // still holds every followed table that still exists (one dropped has
  // nothing more to send) and every change kind. Sent as a simple query
  // (text only: names from the catalog and the checked publication name).
  void BuildProbe() {
    std::vector<std::string> tables;
    for (const Entity* e : entities_) tables.push_back(e->qualified_name);
    probe_sql_ = absl::StrCat(
        "SELECT pg_current_wal_lsn()::text, coalesce((SELECT p.pubinsert AND "
        "p.pubupdate AND p.pubdelete AND p.pubtruncate AND (p.puballtables OR "
        "NOT EXISTS (SELECT 1 FROM unnest(",
        SqlLiteral(ArrayLiteral(tables)),
        "::text[]) AS t WHERE to_regclass(t) IS NOT NULL AND to_regclass(t) "
        "NOT IN (SELECT pr.prrelid FROM pg_publication_rel pr WHERE "
        "pr.prpubid = p.oid))) FROM pg_publication p WHERE p.pubname = ",
        SqlLiteral(options_.publication), "), false)");
  }
  // Adds the tables Follow asked for to the publication and to what the
  // stream reports; UNAVAILABLE (restart the stream) when any was added.
  absl::Status ApplyFollowRequests();

  absl::Status StartStreaming();
  absl::Status Stream();
  absl::Status HandleCopyData(absl::string_view data);
  absl::Status SendStatus(bool reply_requested);
  absl::Status PollControl();
  absl::Status SendControl(ControlQuery query, const char* sql);
  void Evaluate(absl::Time now);
  void Interrupt(const absl::Status& why);
  absl::StatusOr<PgResult> Control(const std::string& sql,
                                   const std::vector<std::string>& params,
                                   std::string* sqlstate = nullptr) {
    return Exec(control_.get(), sql, params, wake_fd_,
                absl::Now() + options_.timeouts.statement, sqlstate);
  }

  const ChangeFeed::Options options_;
  const std::string conninfo_;
  const std::shared_ptr<const Catalog> catalog_;
  // The followed tables: the start-up catalog's, then those Follow added
  // (their catalogs kept in followed_catalogs_).
  std::vector<const Entity*> entities_;
  std::vector<std::shared_ptr<const Catalog>> followed_catalogs_;
  // Entities added, told to their requester just before the next OnLive.
  std::vector<std::pair<const Entity*, FollowDone>> announce_;
  ChangeListener* const listener_;
  const int wake_fd_;
  std::string probe_sql_;

  PgConn control_;
  PgConn replication_;
  PgOutputDecoder decoder_;
  std::string slot_;
  uint64_t streams_ = 0;
  // Per stream:
  Lsn start_lsn_ = 0;  // the slot's consistent point
  FeedLiveness liveness_;
  bool went_live_ = false;
  ControlQuery control_query_ = ControlQuery::kNone;
  absl::Time control_sent_;
  absl::Time last_nudge_ = absl::InfinitePast();
  bool nudges_refused_ = false;
  absl::Time last_message_;

  Mutex mu_;
  ChangeFeedStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<FollowRequest> follow_requests_ ABSL_GUARDED_BY(mu_);
};

absl::Status ChangeFeed::Impl::ApplyFollowRequests() {
  std::vector<FollowRequest> requests;
  {
    MutexLock lock(&mu_);
    requests.swap(follow_requests_);
  }
  const absl::Duration timeout = options_.timeouts.statement;
  std::vector<std::string> added;
  for (size_t r = 0; r < requests.size(); ++r) {
    FollowRequest& request = requests[r];
    for (size_t i = 0; i < request.entities.size(); ++i) {
      const Entity* entity = request.entities[i];
      auto followed = std::find_if(
          entities_.begin(), entities_.end(),
          [entity](const Entity* e) { return e->name == entity->name; });
      if (followed != entities_.end() && (*followed)->oid == entity->oid) {
        // The same table, followed all along: its changes are delivered.
        request.done(*entity, absl::OkStatus());
        continue;
      }
      absl::Status s =
          CheckReplicaIdentity(control_.get(), {entity}, wake_fd_, timeout);
      if (s.ok()) {
        s = EnsurePublication(control_.get(), options_.publication, {entity},
                              wake_fd_, timeout);
      }
      if (absl::IsUnavailable(s) || absl::IsCancelled(s) ||
          absl::IsDeadlineExceeded(s)) {
        // The connection, not the table: ask again on the next stream.
        request.entities.erase(request.entities.begin(),
                               request.entities.begin() + i);
        BuildProbe();
        MutexLock lock(&mu_);
        follow_requests_.insert(follow_requests_.begin(),
                                std::make_move_iterator(requests.begin() + r),
                                std::make_move_iterator(requests.end()));
        return s;
      }
      if (!s.ok()) {
        request.done(*entity, s);
        continue;
      }
      decoder_.Follow(entity);
      if (followed != entities_.end()) {
        *followed = entity;  // created again: the new table replaces it
      } else {
        entities_.push_back(entity);
      }
      announce_.emplace_back(entity, request.done);
      added.push_back(entity->name);
    }
    followed_catalogs_.push_back(std::move(request.catalog));
  }
  if (added.empty()) return absl::OkStatus();
  BuildProbe();
  return absl::UnavailableError(
      absl::StrCat("now following ", absl::StrJoin(added, ", "),
                   ": the stream restarts on a new slot"));
}

absl::Status ChangeFeed::Impl::Connect() {
  const absl::Duration connect = options_.timeouts.connect;
  absl::StatusOr<PgConn> control =
      ConnectAsync(conninfo_, {}, wake_fd_, connect);
  if (!control.ok()) return control.status();
  control_ = *std::move(control);
  // Nudges must reach the disk at once, whatever the database's default,
  // and need no synchronous standby.
  absl::StatusOr<PgResult> set = Control("SET synchronous_commit = local", {});
  if (!set.ok()) return set.status();
  const absl::Duration timeout = options_.timeouts.statement;
  absl::Status status =
      CheckLogicalReplication(control_.get(), entities_, wake_fd_, timeout);
  if (!status.ok()) return status;
  status = EnsurePublication(control_.get(), options_.publication, entities_,
                             wake_fd_, timeout);
  if (!status.ok()) return status;

  slot_ = SlotName(options_.slot_prefix);
  absl::StatusOr<PgConn> replication = ConnectAsync(
      conninfo_, {{"replication", "database"}, {"application_name", slot_}},
      wake_fd_, connect);
  if (!replication.ok()) {
    const std::string message(replication.status().message());
    if (absl::StrContains(message, "max_wal_senders")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the change feed needs a free WAL sender: raise max_wal_senders "
          "(and restart PostgreSQL): ",
          message));
    }
    if (absl::StrContains(message, "replication role") ||
        absl::StrContains(message, "REPLICATION attribute")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the change feed's role needs the REPLICATION attribute (ALTER "
          "ROLE ... REPLICATION): ",
          message));
    }
    return replication.status();
  }
  replication_ = *std::move(replication);
  absl::StatusOr<Lsn> start =
      CreateTemporarySlot(replication_.get(), slot_, wake_fd_, timeout);
  if (!start.ok()) return start.status();
  start_lsn_ = *start;
  MutexLock lock(&mu_);
  stats_.slot_name = slot_;
  return absl::OkStatus();
}

absl::Status ChangeFeed::Impl::StartStreaming() {
  const std::string sql =
      absl::StrCat("START_REPLICATION SLOT ", slot_,
                   " LOGICAL 0/0 (proto_version '1', publication_names ",
                   SqlLiteral(QuoteIdentifier(options_.publication)), ")");
  absl::StatusOr<PgResult> r = Exec(replication_.get(), sql, {}, wake_fd_,
                                    absl::Now() + options_.timeouts.statement);
  if (!r.ok()) return r.status();
  if (PQresultStatus(r->get()) != PGRES_COPY_BOTH) {
    return absl::InternalError("START_REPLICATION did not start a stream");
  }
  const absl::Time now = absl::Now();
  decoder_.Reset();
  liveness_.Restart(now, start_lsn_);
  went_live_ = false;
  control_query_ = ControlQuery::kNone;
  last_message_ = now;
  MutexLock lock(&mu_);
  stats_.connected = true;
  stats_.slot_name = slot_;
  stats_.received_lsn = start_lsn_;
  if (streams_++ > 0) ++stats_.reconnects;
  return absl::OkStatus();
}

absl::Status ChangeFeed::Impl::SendStatus(bool reply_requested) {
  std::string msg = "r";
  const Lsn received = liveness_.received();
  PutInt64(msg, received);  // written
  PutInt64(msg, received);  // flushed: a temporary slot is never resumed
  PutInt64(msg, received);  // applied
  PutInt64(msg, static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()) -
                                      kPgEpochMicros));
  msg.push_back(reply_requested ? 1 : 0);
  if (PQputCopyData(replication_.get(), msg.data(),
                    static_cast<int>(msg.size())) != 1) {
    return absl::UnavailableError(
        absl::StrCat("replication stream: ", ErrorText(replication_.get())));
  }
  // Non-blocking: what does not fit now is flushed by the poll loop.
  if (PQflush(replication_.get()) < 0) {
    return absl::UnavailableError(
        absl::StrCat("replication stream: ", ErrorText(replication_.get())));
  }
  return absl::OkStatus();
}

absl::Status ChangeFeed::Impl::SendControl(ControlQuery query,
                                           const char* sql) {
  if (!PQsendQuery(control_.get(), sql) || PQflush(control_.get()) < 0) {
    return absl::UnavailableError(
        absl::StrCat("change feed probe: ", ErrorText(control_.get())));
  }
  control_query_ = query;
  control_sent_ = absl::Now();
  return absl::OkStatus();
}

absl::Status ChangeFeed::Impl::PollControl() {
  if (!PQconsumeInput(control_.get())) {
    return absl::UnavailableError(
        absl::StrCat("change feed probe: ", ErrorText(control_.get())));
  }
  while (control_query_ != ControlQuery::kNone && !PQisBusy(control_.get())) {
    PgResult r(PQgetResult(control_.get()));
    if (r == nullptr) {
      control_query_ = ControlQuery::kNone;
      break;
    }
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      const std::string error(
          absl::StripAsciiWhitespace(PQresultErrorMessage(r.get())));
      if (control_query_ == ControlQuery::kNudge) {
        // Nudges only speed up a rare case (see Stream); a role that may
        // not emit messages does without them.
        nudges_refused_ = true;
        MutexLock lock(&mu_);
        stats_.last_error = absl::PermissionDeniedError(
            absl::StrCat("change feed nudge: ", error));
        continue;
      }
      return absl::UnavailableError(absl::StrCat("change feed probe: ", error));
    }
    if (control_query_ != ControlQuery::kProbe || PQntuples(r.get()) != 1) {
      continue;
    }
    if (absl::string_view(PQgetvalue(r.get(), 0, 1)) != "t") {
      // Changes of a table the publication lost are not sent at all: the
      // stream cannot vouch for them. A new one starts with the publication
      // mended (EnsurePublication).
      return absl::UnavailableError(
          absl::StrCat("publication ", QuoteIdentifier(options_.publication),
                       " no longer publishes every followed table and change"));
    }
    std::optional<Lsn> lsn = ParseLsn(PQgetvalue(r.get(), 0, 0));
    if (!lsn) return absl::InternalError("pg_current_wal_lsn() unreadable");
    liveness_.AddProbe(control_sent_, *lsn);
    {
      MutexLock lock(&mu_);
      stats_.server_lsn = *lsn;
    }
    // Ask the walsender where it is now; it answers with a keepalive.
    if (*lsn > liveness_.received()) {
      absl::Status s = SendStatus(true);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ChangeFeed::Impl::HandleCopyData(absl::string_view data) {
  last_message_ = absl::Now();
  if (data.empty()) return absl::DataLossError("empty replication message");
  if (data[0] == 'w') {  // XLogData: start, end, send time, payload
    if (data.size() < 25) return absl::DataLossError("short XLogData");
    absl::Status s = decoder_.Decode(data.substr(25));
    if (!s.ok()) return s;
    if (!decoder_.in_transaction()) {
      liveness_.Received(decoder_.last_commit_end());
    }
    return absl::OkStatus();
  }
  if (data[0] == 'k') {  // keepalive: WAL end, send time, reply requested
    if (data.size() < 18) return absl::DataLossError("short keepalive");
    // The walsender's position; mid-transaction it says nothing about
    // what the transaction's messages still to come.
    if (!decoder_.in_transaction()) {
      liveness_.Received(GetInt64(data, 1));
    }
    if (data[17] != 0) return SendStatus(false);
    return absl::OkStatus();
  }
  return absl::DataLossError(
      absl::StrCat("unknown replication message ", static_cast<int>(data[0])));
}

void ChangeFeed::Impl::Interrupt(const absl::Status& why) {
  if (liveness_.Interrupt(absl::Now()) != FeedLiveness::Change::kInterrupted) {
    return;
  }
  {
    MutexLock lock(&mu_);
    stats_.live = false;
  }
  listener_->OnInterrupted(why);
}

void ChangeFeed::Impl::Evaluate(absl::Time now) {
  const FeedLiveness::Change change = liveness_.Evaluate(now);
  {
    MutexLock lock(&mu_);
    stats_.received_lsn = liveness_.received();
    stats_.lag = liveness_.lag(now);
    stats_.lag_bytes = liveness_.lag_bytes();
    stats_.live = liveness_.live();
  }
  if (change == FeedLiveness::Change::kInterrupted) {
    listener_->OnInterrupted(liveness_.why());
  } else if (change == FeedLiveness::Change::kLive) {
    went_live_ = true;
    for (auto& [entity, done] : announce_) done(*entity, absl::OkStatus());
    announce_.clear();
    listener_->OnLive(liveness_.received());
  }
}

absl::Status ChangeFeed::Impl::Stream() {
  absl::Status s = SendControl(ControlQuery::kProbe, probe_sql_.c_str());
  if (!s.ok()) return s;
  absl::Time next_status = absl::Now();
  const absl::Duration nudge_after =
      std::min(absl::Seconds(1), options_.max_lag / 2);
  for (;;) {
    absl::Time now = absl::Now();
    if (now >= next_status) {
      // Asking for a reply keeps the walsender talking on an idle server,
      // so silence means trouble (max_silence).
      s = SendStatus(true);
      if (!s.ok()) return s;
      if (control_query_ == ControlQuery::kNone) {
        bool asked;
        {
          MutexLock lock(&mu_);
          asked = !follow_requests_.empty();
        }
        // Run on the normal connection, which has no query in flight now.
        if (asked) {
          s = ApplyFollowRequests();
          if (!s.ok()) return s;
        }
        s = SendControl(ControlQuery::kProbe, probe_sql_.c_str());
        if (!s.ok()) return s;
      }
      next_status = now + options_.status_interval;
    }
    // A probe the walsender cannot reach: the written WAL ends inside a
    // record (an open transaction's, cut at a page boundary). A committed
    // message after it makes the server write and flush the rest.
    if (!nudges_refused_ && liveness_.lag(now) >= nudge_after &&
        now - last_nudge_ >= nudge_after &&
        control_query_ == ControlQuery::kNone) {
      s = SendControl(ControlQuery::kNudge, kNudgeSql);
      if (!s.ok()) return s;
      last_nudge_ = now;
    }
    if (now - last_message_ > options_.max_silence) {
      return absl::UnavailableError(
          absl::StrCat("the walsender sent nothing for ",
                       absl::FormatDuration(options_.max_silence)));
    }
    if (control_query_ != ControlQuery::kNone &&
        now - control_sent_ > options_.timeouts.statement) {
      return absl::UnavailableError("a change feed probe went unanswered");
    }

    const bool want_write =
        PQisnonblocking(replication_.get()) && PQflush(replication_.get()) == 1;
    pollfd fds[3] = {
        {PQsocket(replication_.get()),
         static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0},
        {PQsocket(control_.get()), POLLIN, 0},
        {wake_fd_, POLLIN, 0}};
    const absl::Duration wait = std::clamp(
        next_status - now, absl::ZeroDuration(), absl::Milliseconds(250));
    const int n = poll(fds, 3,
                       static_cast<int>(absl::ToInt64Milliseconds(
                           wait + absl::Milliseconds(1))));
    if (n < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", errno));
    }
    if (fds[2].revents != 0) return absl::CancelledError("change feed stopped");
    if (fds[0].revents != 0) {
      if (!PQconsumeInput(replication_.get())) {
        return absl::UnavailableError(absl::StrCat(
            "replication stream: ", ErrorText(replication_.get())));
      }
      for (;;) {
        char* buf = nullptr;
        const int len = PQgetCopyData(replication_.get(), &buf, 1);
        if (len == 0) break;
        if (len < 0) {
          if (buf != nullptr) PQfreemem(buf);
          std::string why = ErrorText(replication_.get());
          while (PGresult* r = PQgetResult(replication_.get())) {
            if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
              why = std::string(
                  absl::StripAsciiWhitespace(PQresultErrorMessage(r)));
            }
            PQclear(r);
          }
          return absl::UnavailableError(
              absl::StrCat("the replication stream ended: ", why));
        }
        s = HandleCopyData(absl::string_view(buf, len));
        PQfreemem(buf);
        if (!s.ok()) return s;
      }
    }
    if (fds[1].revents != 0) {
      s = PollControl();
      if (!s.ok()) return s;
    }
    Evaluate(absl::Now());
  }
}

void ChangeFeed::Impl::Run() {
  absl::Duration backoff = options_.reconnect_min;
  for (;;) {
    absl::Status s = replication_ ? absl::OkStatus() : Connect();
    if (s.ok()) s = StartStreaming();
    if (s.ok()) {
      s = Stream();
      if (went_live_) backoff = options_.reconnect_min;
    }
    CloseConnections();
    decoder_.Reset();
    {
      MutexLock lock(&mu_);
      stats_.last_error = s;
    }
    if (absl::IsCancelled(s)) break;
    Interrupt(s);
    pollfd wake = {wake_fd_, POLLIN, 0};
    if (poll(&wake, 1, static_cast<int>(absl::ToInt64Milliseconds(backoff))) >
        0) {
      break;
    }
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
  CloseConnections();
  Interrupt(absl::CancelledError("the change feed stopped"));
}

absl::StatusOr<std::unique_ptr<ChangeFeed>> ChangeFeed::Create(
    Options options, std::shared_ptr<const Catalog> catalog,
    ChangeListener* listener) {
  if (catalog == nullptr || listener == nullptr) {
    return absl::InvalidArgumentError(
        "a change feed needs a catalog and a "
        "listener");
  }
  if (!IsNameChars(options.publication)) {
    return absl::InvalidArgumentError(
        absl::StrCat("publication name \"", Abbreviate(options.publication),
                     "\": use 1 to 63 lower-case letters, digits and '_'"));
  }
  if (!IsNameChars(options.slot_prefix) || options.slot_prefix.size() > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot prefix \"", Abbreviate(options.slot_prefix),
                     "\": use 1 to 32 lower-case letters, digits and '_'"));
  }
  if (options.status_interval <= absl::ZeroDuration() ||
      options.max_lag <= absl::ZeroDuration() ||
      options.max_silence <= options.status_interval ||
      options.reconnect_min <= absl::ZeroDuration() ||
      options.reconnect_max < options.reconnect_min) {
    return absl::InvalidArgumentError(
        "change feed intervals: status_interval, max_lag and reconnect_min "
        "must be positive, max_silence longer than status_interval, "
        "reconnect_max at least reconnect_min");
  }
  std::vector<const Entity*> entities;
  if (options.entities.empty()) {
    for (const Entity& e : catalog->entities()) entities.push_back(&e);
  } else {
    for (const std::string& name : options.entities) {
      const Entity* e = catalog->Find(name);
      if (e == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("the change feed cannot follow \"", Abbreviate(name),
                         "\": no such entity"));
      }
      if (std::find(entities.begin(), entities.end(), e) == entities.end()) {
        entities.push_back(e);
      }
    }
  }
  if (entities.empty()) {
    return absl::FailedPreconditionError(
        "the change feed has no entity to follow");
  }
  absl::StatusOr<std::string> conninfo =
      ConnInfoWithTimeouts(options.database_url, options.timeouts);
  if (!conninfo.ok()) return conninfo.status();
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    return absl::ResourceExhaustedError(absl::StrCat("eventfd: ", errno));
  }
  auto impl = std::make_unique<Impl>(std::move(options), *std::move(conninfo),
                                     std::move(catalog), std::move(entities),
                                     listener, wake_fd);
  absl::Status s = impl->Connect();
  if (!s.ok()) return s;
  return std::unique_ptr<ChangeFeed>(new ChangeFeed(std::move(impl)));
}

ChangeFeed::ChangeFeed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ChangeFeed::~ChangeFeed() { Stop(); }

void ChangeFeed::Start() {
  MutexLock lock(&impl_->lifecycle_mu);
  if (impl_->started || impl_->stopped) return;
  impl_->started = true;
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
}

void ChangeFeed::Stop() {
  MutexLock lock(&impl_->lifecycle_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->RequestStop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->CloseConnections();
}

void ChangeFeed::Follow(std::shared_ptr<const Catalog> catalog,
                        std::vector<const Entity*> entities, FollowDone done) {
  impl_->Follow(std::move(catalog), std::move(entities), std::move(done));
}

ChangeFeedStats ChangeFeed::Stats() const { return impl_->Stats(); }

}  // namespace rowgate::storage
