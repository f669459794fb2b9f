#include "storage/replication_setup.h"

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "storage/value.h"

namespace rowgate::storage {

// rowgate_<host>_<pid>_<random>: unique per instance and per stream (a new
// stream may start before the old walsender has gone), at most 63 bytes of
// [a-z0-9_].
std::string SlotName(absl::string_view prefix) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string clean;
  for (const char* p = host; *p != '\0'; ++p) {
    const char c = absl::ascii_tolower(*p);
    clean.push_back(absl::ascii_isalnum(c) ? c : '_');
  }
  std::random_device random;
  const std::string tail =
      absl::StrFormat("_%d_%08x", static_cast<int>(getpid()), random());
  const size_t room =
      63 - std::min<size_t>(63, prefix.size() + 1 + tail.size());
  if (clean.size() > room) clean.resize(room);
  return absl::StrCat(prefix, clean.empty() ? "" : "_", clean, tail)
      .substr(0, 63);
}

absl::Status CheckLogicalReplication(PGconn* conn,
                                     const std::vector<const Entity*>& entities,
                                     int wake_fd, absl::Duration timeout) {
  auto Control = [&](const std::string& sql,
                     const std::vector<std::string>& params) {
    return Exec(conn, sql, params, wake_fd, absl::Now() + timeout);
  };
  absl::StatusOr<PgResult> r = Control(
      "SELECT current_setting('wal_level'), r.rolsuper OR r.rolreplication, "
      "current_user, "
      "current_setting('max_replication_slots')::int - "
      "(SELECT count(*) FROM pg_replication_slots), "
      "current_setting('max_wal_senders')::int - "
      "(SELECT count(*) FROM pg_stat_replication) "
      "FROM pg_roles r WHERE r.rolname = current_user",
      {});
  if (!r.ok()) return r.status();
  if (PQntuples(r->get()) != 1) {
    return absl::InternalError("the change feed's role is not in pg_roles");
  }
  const std::string wal_level = PQgetvalue(r->get(), 0, 0);
  const std::string user = PQgetvalue(r->get(), 0, 2);
  if (wal_level != "logical") {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL's wal_level is '", wal_level,
        "'; the change feed (logical replication) needs 'logical': run ALTER "
        "SYSTEM SET wal_level = logical and restart PostgreSQL"));
  }
  if (absl::string_view(PQgetvalue(r->get(), 0, 1)) != "t") {
    return absl::FailedPreconditionError(absl::StrCat(
        "role \"", Abbreviate(user),
        "\" may not stream logical replication: ALTER ROLE ",
        QuoteIdentifier(user),
        " REPLICATION (or connect as a superuser; on managed services grant "
        "their replication role, e.g. rds_replication)"));
  }
  if (std::atoi(PQgetvalue(r->get(), 0, 3)) <= 0) {
    return absl::FailedPreconditionError(
        "all replication slots are in use: raise max_replication_slots (and "
        "restart PostgreSQL) or drop unused slots (see pg_replication_slots)");
  }
  if (std::atoi(PQgetvalue(r->get(), 0, 4)) <= 0) {
    return absl::FailedPreconditionError(
        "all WAL senders are in use: raise max_wal_senders (and restart "
        "PostgreSQL)");
  }
  return CheckReplicaIdentity(conn, entities, wake_fd, timeout);
}

absl::Status CheckReplicaIdentity(PGconn* conn,
                                  const std::vector<const Entity*>& entities,
                                  int wake_fd, absl::Duration timeout) {
  std::vector<std::string> tables;
  for (const Entity* e : entities) tables.push_back(e->qualified_name);
  // to_regclass: a followed table dropped meanwhile is no error (nothing
  // of it can change any more).
  absl::StatusOr<PgResult> r =
      Exec(conn,
           "SELECT c.oid::regclass::text FROM unnest($1::text[]) AS t JOIN "
           "pg_class c ON c.oid = to_regclass(t) WHERE c.relreplident = 'n'",
           {ArrayLiteral(tables)}, wake_fd, absl::Now() + timeout);
  if (!r.ok()) return r.status();
  if (PQntuples(r->get()) > 0) {
    const std::string table = PQgetvalue(r->get(), 0, 0);
    return absl::FailedPreconditionError(absl::StrCat(
        "table ", Abbreviate(table),
        " has REPLICA IDENTITY NOTHING: published, it would refuse updates "
        "and deletes; run ALTER TABLE ",
        Abbreviate(table), " REPLICA IDENTITY DEFAULT, or leave it uncached"));
  }
  return absl::OkStatus();
}

absl::Status EnsurePublication(PGconn* conn, const std::string& name,
                               const std::vector<const Entity*>& entities,
                               int wake_fd, absl::Duration timeout,
                               bool retried) {
  auto Control = [&](const std::string& sql,
                     const std::vector<std::string>& params,
                     std::string* sqlstate = nullptr) {
    return Exec(conn, sql, params, wake_fd, absl::Now() + timeout, sqlstate);
  };
  const std::string publication = QuoteIdentifier(name);
  std::vector<std::string> tables;
  for (const Entity* e : entities) tables.push_back(e->qualified_name);
  // Only the tables that still exist: one dropped since the catalog was
  // read has nothing left to publish.
  absl::StatusOr<PgResult> existing = Control(
      "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS "
      "NOT NULL",
      {ArrayLiteral(tables)});
  if (!existing.ok()) return existing.status();
  tables.clear();
  for (int i = 0; i < PQntuples(existing->get()); ++i) {
    tables.push_back(PQgetvalue(existing->get(), i, 0));
  }
  if (tables.empty()) return absl::OkStatus();
  auto denied = [&](const absl::Status& status) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the change feed cannot create or extend publication ", publication,
        " (it needs CREATE on the database and ownership of the tables, or a "
        "superuser); have an administrator run CREATE PUBLICATION ",
        publication, " FOR TABLE ",
        Abbreviate(absl::StrJoin(tables, ", "), 200), ": ", status.message()));
  };
  std::string sqlstate;
  absl::StatusOr<PgResult> r = Control(
      "SELECT puballtables, pubinsert AND pubupdate AND pubdelete AND "
      "pubtruncate AND pubviaroot FROM pg_publication WHERE pubname = $1",
      {name});
  if (!r.ok()) return r.status();
  if (PQntuples(r->get()) == 0) {
    // Changes of a partition are reported as its partitioned table's, the
    // entity the catalog knows.
    r = Control(absl::StrCat("CREATE PUBLICATION ", publication, " FOR TABLE ",
                             absl::StrJoin(tables, ", "),
                             " WITH (publish_via_partition_root = true)"),
                {}, &sqlstate);
    if (r.ok()) return absl::OkStatus();
    if (sqlstate == "42710" && !retried)
      return EnsurePublication(conn, name, entities, wake_fd, timeout, true);
    return sqlstate == "42501" ? denied(r.status()) : r.status();
  }
  const bool all_tables = absl::string_view(PQgetvalue(r->get(), 0, 0)) == "t";
  if (absl::string_view(PQgetvalue(r->get(), 0, 1)) != "t") {
    r = Control(absl::StrCat("ALTER PUBLICATION ", publication,
                             " SET (publish = 'insert, update, delete, "
                             "truncate', publish_via_partition_root = true)"),
                {}, &sqlstate);
    if (!r.ok()) return sqlstate == "42501" ? denied(r.status()) : r.status();
  }
  if (all_tables) return absl::OkStatus();
  r = Control(
      "SELECT t FROM unnest($2::text[]) AS t WHERE to_regclass(t) NOT IN "
      "(SELECT pr.prrelid FROM pg_publication_rel pr JOIN pg_publication p "
      "ON p.oid = pr.prpubid WHERE p.pubname = $1)",
      {name, ArrayLiteral(tables)});
  if (!r.ok()) return r.status();
  std::vector<std::string> missing;
  for (int i = 0; i < PQntuples(r->get()); ++i) {
    missing.push_back(PQgetvalue(r->get(), i, 0));
  }
  if (missing.empty()) return absl::OkStatus();
  r = Control(absl::StrCat("ALTER PUBLICATION ", publication, " ADD TABLE ",
                           absl::StrJoin(missing, ", ")),
              {}, &sqlstate);
  if (r.ok()) return absl::OkStatus();
  // Another rowgate may have added them meanwhile.
  if (sqlstate == "42710" && !retried)
    return EnsurePublication(conn, name, entities, wake_fd, timeout, true);
  return sqlstate == "42501" ? denied(r.status()) : r.status();
}

absl::StatusOr<Lsn> CreateTemporarySlot(PGconn* replication,
                                        const std::string& slot, int wake_fd,
                                        absl::Duration timeout) {
  std::string sqlstate;
  absl::StatusOr<PgResult> r =
      Exec(replication,
           absl::StrCat("CREATE_REPLICATION_SLOT ", slot,
                        " TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT"),
           {}, wake_fd, absl::Now() + timeout, &sqlstate);
  if (r.ok()) {
    std::optional<Lsn> lsn;
    if (PQntuples(r->get()) == 1) lsn = ParseLsn(PQgetvalue(r->get(), 0, 1));
    if (!lsn) return absl::InternalError("CREATE_REPLICATION_SLOT: no LSN");
    return *lsn;
  }
  if (sqlstate.empty() && absl::IsUnavailable(r.status())) {
    // PostgreSQL builds a slot's starting snapshot only once every
    // transaction open at its creation has ended.
    return absl::UnavailableError(absl::StrCat(
        "creating replication slot ", slot,
        " waits for the transactions open on the server to end (look for "
        "long or idle-in-transaction sessions in pg_stat_activity): ",
        r.status().message()));
  }
  if (sqlstate == "53400") {
    return absl::FailedPreconditionError(absl::StrCat(
        "all replication slots are in use: raise max_replication_slots (and "
        "restart PostgreSQL) or drop unused slots (see "
        "pg_replication_slots): ",
        r.status().message()));
  }
  if (sqlstate == "55000") {
    return absl::FailedPreconditionError(absl::StrCat(
        "logical replication is not possible (ALTER SYSTEM SET wal_level = "
        "logical and restart PostgreSQL): ",
        r.status().message()));
  }
  if (sqlstate == "42501") {
    return absl::FailedPreconditionError(
        absl::StrCat("the change feed's role needs the REPLICATION attribute: ",
                     r.status().message()));
  }
  return r.status();
}

}  // namespace rowgate::storage
