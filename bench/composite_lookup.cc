// Times the candidate statements for a loader batch looked up by a
// composite primary key (issue 10): the same random keys of a users_groups
// shaped table, prepared once, then executed `iterations` times per form and
// batch size. Prints microseconds per query. Run by bench/composite_lookup.sh
// against the local Postgres (never by the test suite: numbers, no asserts).
//
//   composite_lookup "postgresql://..." [rows] [iterations]
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

PGconn* conn;

void Exec(const std::string& sql) {
  PGresult* r = PQexec(conn, sql.c_str());
  if (PQresultStatus(r) != PGRES_COMMAND_OK &&
      PQresultStatus(r) != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "%s: %s\n", sql.c_str(), PQerrorMessage(conn));
    std::exit(1);
  }
  PQclear(r);
}

std::string Array(const std::vector<long>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(v[i]);
  }
  return out + "}";
}

struct Form {
  const char* name;
  // The statement for `n` keys and its parameters.
  std::string (*sql)(int n);
  std::vector<std::string> (*params)(const std::vector<long>& id,
                                     const std::vector<long>& u,
                                     const std::vector<long>& g);
};

constexpr char kCols[] = "t.id, t.user_id, t.group_id";

std::vector<std::string> ThreeArrays(const std::vector<long>& id,
                                     const std::vector<long>& u,
                                     const std::vector<long>& g) {
  return {Array(id), Array(u), Array(g)};
}

std::vector<std::string> Labelled(const std::vector<long>& id,
                                  const std::vector<long>& u,
                                  const std::vector<long>& g) {
  std::vector<std::string> labels;
  for (size_t i = 0; i < id.size(); ++i) {
    labels.push_back("\"" + std::to_string(id[i]) + "," + std::to_string(u[i]) +
                     "," + std::to_string(g[i]) + "\"");
  }
  std::string l = "{";
  for (size_t i = 0; i < labels.size(); ++i) l += (i ? "," : "") + labels[i];
  return {Array(id), Array(u), Array(g), l + "}"};
}

std::vector<std::string> Records(const std::vector<long>& id,
                                 const std::vector<long>& u,
                                 const std::vector<long>& g) {
  std::string out = "{";
  for (size_t i = 0; i < id.size(); ++i) {
    out += (i ? ",\"(" : "\"(") + std::to_string(id[i]) + "," +
           std::to_string(u[i]) + "," + std::to_string(g[i]) + ")\"";
  }
  return {out + "}"};
}

std::vector<std::string> Flat(const std::vector<long>& id,
                              const std::vector<long>& u,
                              const std::vector<long>& g) {
  std::vector<std::string> out;
  for (size_t i = 0; i < id.size(); ++i) {
    out.push_back(std::to_string(id[i]));
    out.push_back(std::to_string(u[i]));
    out.push_back(std::to_string(g[i]));
  }
  return out;
}

const Form kForms[] = {
    {"in_unnest",
     [](int) {
       return std::string("SELECT ") + kCols +
              " FROM ug AS t WHERE (t.id, t.user_id, t.group_id) IN (SELECT * "
              "FROM unnest($1::int8[], $2::int8[], $3::int8[]))";
     },
     ThreeArrays},
    {"join_unnest_labelled",
     [](int) {
       return std::string("SELECT ") + kCols +
              ", k.req FROM ug AS t JOIN unnest($1::int8[], $2::int8[], "
              "$3::int8[], $4::text[]) AS k(a, b, c, req) ON (t.id, "
              "t.user_id, t.group_id) = (k.a, k.b, k.c)";
     },
     Labelled},
    {"any_record_array",
     [](int) {
       return std::string("SELECT ") + kCols +
              " FROM ug AS t WHERE (t.id, t.user_id, t.group_id) = "
              "ANY($1::ug_key[])";
     },
     Records},
    {"in_values_3n_params",
     [](int n) {
       std::string sql = std::string("SELECT ") + kCols +
                         " FROM ug AS t WHERE (t.id, t.user_id, t.group_id) "
                         "IN (VALUES ";
       for (int i = 0; i < n; ++i) {
         sql += (i ? ", (" : "(") + std::string("$") +
                std::to_string(3 * i + 1) + "::int8, $" +
                std::to_string(3 * i + 2) + "::int8, $" +
                std::to_string(3 * i + 3) + "::int8)";
       }
       return sql + ")";
     },
     Flat},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL [rows] [iterations]\n", argv[0]);
    return 2;
  }
  const long rows = argc > 2 ? std::atol(argv[2]) : 200000;
  const int iterations = argc > 3 ? std::atoi(argv[3]) : 200;
  conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "%s\n", PQerrorMessage(conn));
    return 1;
  }
  Exec("DROP TABLE IF EXISTS ug; DROP TYPE IF EXISTS ug_key");
  Exec("CREATE TYPE ug_key AS (id int8, user_id int8, group_id int8)");
  Exec(
      "CREATE TABLE ug (id int8, user_id int8, group_id int8, "
      "PRIMARY KEY (id, user_id, group_id))");
  Exec("INSERT INTO ug SELECT i, i % 1000, i % 37 FROM generate_series(1, " +
       std::to_string(rows) + ") i");
  Exec("VACUUM ANALYZE ug");

  std::mt19937 rng(42);
  std::printf("form,keys_per_query,iterations,us_per_query,rows_per_query\n");
  for (int n : {1, 10, 100, 1000}) {
    // The same keys for every form: n random existing rows.
    std::vector<std::vector<long>> id(iterations), u(iterations), g(iterations);
    for (int it = 0; it < iterations; ++it) {
      for (int k = 0; k < n; ++k) {
        const long i = 1 + static_cast<long>(rng() % rows);
        id[it].push_back(i);
        u[it].push_back(i % 1000);
        g[it].push_back(i % 37);
      }
    }
    // Forms take turns on the same keys, so a load that comes and goes on
    // the machine falls on each of them alike.
    constexpr size_t kForms = sizeof(::kForms) / sizeof(::kForms[0]);
    std::vector<std::string> names;
    for (size_t f = 0; f < kForms; ++f) {
      names.push_back("s" + std::to_string(n) + "_" + std::to_string(f));
      const std::string sql = ::kForms[f].sql(n);
      PGresult* p = PQprepare(conn, names[f].c_str(), sql.c_str(), 0, nullptr);
      if (PQresultStatus(p) != PGRES_COMMAND_OK) {
        std::fprintf(stderr, "%s: %s\n", ::kForms[f].name,
                     PQerrorMessage(conn));
        return 1;
      }
      PQclear(p);
    }
    std::vector<long> found(kForms, 0);
    std::vector<int> runs(kForms, 0);
    std::vector<std::chrono::nanoseconds> total(kForms,
                                                std::chrono::nanoseconds{0});
    for (int it = 0; it < iterations; ++it) {
      for (size_t f = 0; f < kForms; ++f) {
        // The record form scans the table: a tenth of the runs tells enough.
        if (f == 2 && it % 10 != 0) continue;
        const std::vector<std::string> params =
            ::kForms[f].params(id[it], u[it], g[it]);
        std::vector<const char*> values;
        for (const std::string& s : params) values.push_back(s.c_str());
        const auto start = std::chrono::steady_clock::now();
        PGresult* r = PQexecPrepared(conn, names[f].c_str(),
                                     static_cast<int>(values.size()),
                                     values.data(), nullptr, nullptr, 0);
        total[f] += std::chrono::steady_clock::now() - start;
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
          std::fprintf(stderr, "%s: %s\n", ::kForms[f].name,
                       PQerrorMessage(conn));
          return 1;
        }
        found[f] += PQntuples(r);
        ++runs[f];
        PQclear(r);
      }
    }
    for (size_t f = 0; f < kForms; ++f) {
      std::printf("%s,%d,%d,%.1f,%.1f\n", ::kForms[f].name, n, runs[f],
                  total[f].count() / 1000.0 / runs[f],
                  static_cast<double>(found[f]) / runs[f]);
    }
  }
  Exec("DROP TABLE ug; DROP TYPE ug_key");
  PQfinish(conn);
  return 0;
}
