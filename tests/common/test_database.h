// Access to the real PostgreSQL that `make test` starts for the tests.
//
// TestDatabaseUrl() is the URL of a database holding the demo schema and
// data (deploy/schema.sql, deploy/sample_data.sql), recreated per `make test`
// run. Tests that change rows should restore them or use rows they created.
// Thread-safe; ExecSql blocks on a fresh connection of its own.
#ifndef ROWGATE_TESTS_COMMON_TEST_DATABASE_H_
#define ROWGATE_TESTS_COMMON_TEST_DATABASE_H_

#include <string>
#include <vector>

namespace rowgate::testing {

// The test database's URL; fails the calling test (and returns "") when
// ROWGATE_TEST_DATABASE_URL is unset.
std::string TestDatabaseUrl();

// Runs `sql` on a new connection and returns the rows, each field as text
// ("NULL" for null). Throws on an SQL error (tests see it as a failure).
std::vector<std::vector<std::string>> ExecSql(const std::string& sql);

// pg_stat_statements' total `calls` over statements whose text contains
// `fragment` (e.g. "= ANY"). Used to count the queries Postgres executed.
long long StatementCalls(const std::string& fragment);

}  // namespace rowgate::testing

#endif  // ROWGATE_TESTS_COMMON_TEST_DATABASE_H_
