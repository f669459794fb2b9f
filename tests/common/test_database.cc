#include "tests/common/test_database.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <pqxx/pqxx>

namespace rowgate::testing {

std::string TestDatabaseUrl() {
  const char* url = std::getenv("ROWGATE_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "ROWGATE_TEST_DATABASE_URL is not set: run the tests "
                     "with `make test`, which starts a local Postgres";
    return "";
  }
  return url;
}

std::vector<std::vector<std::string>> ExecSql(const std::string& sql) {
  pqxx::connection conn(TestDatabaseUrl());
  pqxx::nontransaction txn(conn);
  pqxx::result result = txn.exec(sql);
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : result) {
    std::vector<std::string> out;
    for (const auto& field : row) {
      out.push_back(field.is_null() ? "NULL" : field.c_str());
    }
    rows.push_back(std::move(out));
  }
  return rows;
}

long long StatementCalls(const std::string& fragment) {
  pqxx::connection conn(TestDatabaseUrl());
  pqxx::nontransaction txn(conn);
  pqxx::result result = txn.exec_params(
      "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
      "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
      "current_database()) AND query LIKE '%' || $1 || '%'",
      fragment);
  return result[0][0].as<long long>();
}

}  // namespace rowgate::testing
