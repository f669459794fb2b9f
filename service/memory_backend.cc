#include "service/memory_backend.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "storage/table_ops.h"

namespace rowgate::service {
namespace {

storage::Row SynthesizedUser(int64_t id) {
  return storage::Row{
      id,
      absl::StrCat("Name", id),
      absl::StrCat("Surname", id),
      absl::StrCat("user", id, "@university.world"),
      storage::Timestamp{1700000000000000 + id},
      id + 1000,
  };
}

}  // namespace

std::shared_ptr<const storage::Catalog> MemoryBackendCatalog() {
  storage::Entity users;
  users.name = "users";
  users.qualified_name = "\"public\".\"users\"";
  auto column = [](std::string name, std::string type, storage::ColumnType t) {
    storage::Column c;
    c.quoted_name = storage::QuoteIdentifier(name);
    c.name = std::move(name);
    c.type_name = std::move(type);
    c.sql_type = c.type_name;
    c.type = t;
    return c;
  };
  users.columns = {
      column("id", "bigint", storage::ColumnType::kInt64),
      column("name", "character varying", storage::ColumnType::kText),
      column("surname", "character varying", storage::ColumnType::kText),
      column("email", "character varying", storage::ColumnType::kText),
      column("lastchange", "timestamp without time zone",
             storage::ColumnType::kTimestamp),
      column("externalId", "bigint", storage::ColumnType::kInt64),
  };
  users.columns[0].nullable = false;
  users.primary_key = 0;
  users.version_column = 4;
  return storage::Catalog::FromEntities({std::move(users)});
}

loader::LoadResult MemoryLookup(const std::vector<std::string>& keys,
                                int64_t rows) {
  auto found = std::make_shared<storage::KeyedRows>();
  for (const std::string& key : keys) {
    int64_t id;
    if (found->by_key.contains(key) || !absl::SimpleAtoi(key, &id) || id < 1 ||
        id > rows) {
      continue;
    }
    found->by_key[key].push_back(SynthesizedUser(id));
  }
  loader::LoadResult result;
  result.rows_per_key.reserve(keys.size());
  for (const std::string& key : keys) {
    auto it = found->by_key.find(key);
    result.rows_per_key.push_back(it == found->by_key.end() ? nullptr
                                                            : &it->second);
  }
  result.batches.push_back(std::move(found));
  return result;
}

}  // namespace rowgate::service
