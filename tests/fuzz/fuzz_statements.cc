// Fuzzes statement building (storage/statements.h): lookup, insert, update,
// delete and page (filters, order, keyset cursor) over the all-types
// catalog of fuzz_support.h, with fuzzed values.
//
// Invariants: nothing crashes; refusals are INVALID_ARGUMENT with a bounded
// message; the placeholders are exactly $1..$N with N == params.size(); every
// quoted identifier is one the catalog gave, every literal a fixed one, and
// no other word or number appears that a value could have put there (every
// fuzzed string carries a \x01 byte, which no SQL may contain); and a page
// token a Page statement issues is accepted by the same query.
#include <set>
#include <string>

#include "fuzz_support.h"
#include "storage/page_token.h"
#include "storage/statements.h"

namespace rowgate::fuzz {
namespace {

const storage::Catalog& TheCatalog() {
  static const auto* catalog = new auto(AllTypesCatalog());
  return **catalog;
}

// Every quoted identifier the catalog holds (unquoted), and the only
// literals statements may spell out.
const std::set<std::string>& Identifiers() {
  static const auto* names = [] {
    auto* out = new std::set<std::string>{"public", "other schema"};
    for (const storage::Entity& e : TheCatalog().entities()) {
      out->insert(e.name);
      for (const storage::Column& c : e.columns) out->insert(c.name);
    }
    return out;
  }();
  return *names;
}
const std::set<std::string> kLiterals = {"1 microsecond", "UTC"};

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (c >= '0' && c <= '9');
}

void CheckStatement(const storage::Statement& st) {
  const std::string& sql = st.sql;
  std::set<size_t> placeholders;
  for (size_t i = 0; i < sql.size();) {
    const char c = sql[i];
    if (c == '"' || c == '\'') {
      std::string text;
      size_t j = i + 1;
      while (true) {
        Check(j < sql.size(), "unterminated quote in: " + sql);
        if (sql[j] == c) {
          if (j + 1 < sql.size() && sql[j + 1] == c) {  // doubled quote
            text.push_back(c);
            j += 2;
            continue;
          }
          break;
        }
        text.push_back(sql[j++]);
      }
      if (c == '"') {
        Check(Identifiers().count(text) == 1,
              "identifier not from the catalog: " + text);
      } else {
        Check(kLiterals.count(text) == 1, "literal in the SQL: " + text);
      }
      i = j + 1;
    } else if (c == '$') {
      size_t j = i + 1, n = 0;
      while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') {
        n = n * 10 + (sql[j++] - '0');
      }
      Check(j > i + 1 && n >= 1, "bare $ in: " + sql);
      placeholders.insert(n);
      i = j;
    } else if (c >= '0' && c <= '9') {
      Check(false, "a number spliced into: " + sql);
    } else if (IsWordChar(c)) {
      while (i < sql.size() && IsWordChar(sql[i])) ++i;  // keyword, type
    } else {
      Check(std::string(" ,()=<>*.:[]+-").find(c) != std::string::npos,
            absl::StrCat("byte ", static_cast<int>(c), " in: ", sql));
      ++i;
    }
  }
  Check(
      placeholders.size() == st.params.size() &&
          (placeholders.empty() || *placeholders.rbegin() == st.params.size()),
      absl::StrCat(placeholders.size(), " placeholders for ", st.params.size(),
                   " params in: ", sql));
}

template <typename T>
bool CheckResult(const absl::StatusOr<T>& result) {
  if (!result.ok()) {
    CheckError(result.status());
    Check(result.status().code() == absl::StatusCode::kInvalidArgument,
          result.status().ToString());
    return false;
  }
  return true;
}

// A fuzzed value; strings and bytes carry the taint byte.
storage::Value TaintedValue(FuzzedDataProvider& in) {
  storage::Value v = ConsumeValue(in);
  if (auto* s = std::get_if<std::string>(&v)) s->push_back('\x01');
  if (auto* b = std::get_if<storage::Bytes>(&v)) b->data.push_back('\x01');
  return v;
}

// A value a column of this type accepts (what a stored row would hold).
storage::Value StoredValue(FuzzedDataProvider& in, const storage::Column& c) {
  if (c.nullable && in.ConsumeBool()) return std::monostate();
  switch (c.type) {
    case storage::ColumnType::kInt16:
      return static_cast<int64_t>(in.ConsumeIntegral<int16_t>());
    case storage::ColumnType::kInt32:
      return static_cast<int64_t>(in.ConsumeIntegral<int32_t>());
    case storage::ColumnType::kInt64:
      return in.ConsumeIntegral<int64_t>();
    case storage::ColumnType::kFloat32:
    case storage::ColumnType::kFloat64:
      return in.ConsumeFloatingPoint<double>();
    case storage::ColumnType::kBool:
      return in.ConsumeBool();
    case storage::ColumnType::kBytes:
      return storage::Bytes{in.ConsumeRandomLengthString(16) + '\x01'};
    case storage::ColumnType::kTimestamp:
    case storage::ColumnType::kTimestampTz:
      // 0001-01-01 to 9999-12-31, as PostgreSQL returns them.
      return storage::Timestamp{in.ConsumeIntegralInRange<int64_t>(
          -62135596800 * 1000000, 253402300799 * 1000000)};
    default:
      return in.ConsumeRandomLengthString(16) + '\x01';
  }
}

storage::ColumnValues SomeColumns(FuzzedDataProvider& in,
                                  const storage::Entity& e) {
  storage::ColumnValues values;
  const int n = in.ConsumeIntegralInRange<int>(0, e.columns.size() + 2);
  for (int i = 0; i < n; ++i) {
    const int column = in.ConsumeIntegralInRange<int>(0, e.columns.size() - 1);
    values.emplace_back(column, in.ConsumeBool()
                                    ? StoredValue(in, e.columns[column])
                                    : TaintedValue(in));
  }
  return values;
}

void FuzzPage(FuzzedDataProvider& in, const storage::Entity& e) {
  storage::PageQuery query;
  const int filters = in.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < filters; ++i) {
    storage::FilterSpec f;
    f.column = in.ConsumeIntegralInRange<int>(0, e.columns.size() - 1);
    f.op = static_cast<storage::FilterOp>(in.ConsumeIntegralInRange<int>(
        0, static_cast<int>(storage::FilterOp::kIsNotNull)));
    const int values = in.ConsumeIntegralInRange<int>(0, 3);
    for (int v = 0; v < values; ++v) {
      f.values.push_back(in.ConsumeBool() ? StoredValue(in, e.columns[f.column])
                                          : TaintedValue(in));
    }
    query.filters.push_back(std::move(f));
  }
  // Up to 40 sort columns (the service allows 32), repeats allowed.
  const int order = in.ConsumeIntegralInRange<int>(0, 40);
  for (int i = 0; i < order; ++i) {
    query.order.push_back(
        {in.ConsumeIntegralInRange<int>(0, e.columns.size() - 1),
         in.ConsumeBool()});
  }
  query.limit = in.ConsumeIntegralInRange<int>(1, 1000000);
  query.offset = in.ConsumeBool() ? 0 : in.ConsumeIntegral<int64_t>();
  if (in.ConsumeBool()) query.page_token = in.ConsumeRandomLengthString(64);

  absl::StatusOr<storage::PagePlan> plan = storage::PageStatement(e, query);
  if (!CheckResult(plan)) return;
  CheckStatement(plan->statement);
  Check(!plan->order.empty() && plan->order.back().column == e.primary_key,
        "the sort key does not end with the primary key");

  // The token for a last row of stored values is accepted by the same query.
  storage::PageCursor cursor;
  cursor.query_fingerprint = plan->fingerprint;
  for (const storage::OrderSpec& o : plan->order) {
    cursor.last_sort_values.push_back(StoredValue(in, e.columns[o.column]));
  }
  query.page_token = storage::EncodePageToken(cursor);
  query.offset = 0;
  absl::StatusOr<storage::PagePlan> next = storage::PageStatement(e, query);
  if (!next.ok()) {
    // Only a value the column refuses may fail here (e.g. a NUL in text).
    Check(next.status().message().find("different") == std::string::npos,
          "a token is refused by the query that issued it: " +
              next.status().ToString());
    CheckResult(next);
    return;
  }
  CheckStatement(next->statement);
  Check(next->fingerprint == plan->fingerprint, "fingerprint changed");
}

}  // namespace
}  // namespace rowgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rowgate;
  FuzzedDataProvider in(data, size);
  const storage::Entity& e =
      fuzz::TheCatalog().entities()[in.ConsumeIntegralInRange<int>(0, 1)];
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: {
      std::vector<std::string> keys;
      const int n = in.ConsumeIntegralInRange<int>(0, 8);
      for (int i = 0; i < n; ++i) {
        keys.push_back(in.ConsumeRandomLengthString(16) + '\x01');
      }
      int key_column = in.ConsumeIntegralInRange<int>(0, e.columns.size() - 1);
      if (!storage::IsKeyType(e.columns[key_column].type)) {
        key_column = e.primary_key;
      }
      fuzz::CheckStatement(storage::LookupStatement(e, key_column, keys));
      break;
    }
    case 1: {
      std::vector<storage::ColumnValues> rows;
      const int n = in.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < n; ++i) rows.push_back(fuzz::SomeColumns(in, e));
      absl::StatusOr<storage::Statement> st = storage::InsertStatement(e, rows);
      if (fuzz::CheckResult(st)) fuzz::CheckStatement(*st);
      break;
    }
    case 2: {
      absl::StatusOr<storage::UpdatePlan> plan =
          storage::UpdateStatement(e, fuzz::SomeColumns(in, e));
      if (fuzz::CheckResult(plan)) fuzz::CheckStatement(plan->statement);
      break;
    }
    case 3: {
      std::vector<storage::Value> keys;
      const int n = in.ConsumeIntegralInRange<int>(1, 4);
      for (int i = 0; i < n; ++i) {
        keys.push_back(in.ConsumeBool() ? fuzz::StoredValue(in, e.key())
                                        : fuzz::TaintedValue(in));
      }
      std::optional<storage::Value> expected;
      if (in.ConsumeBool()) expected = fuzz::TaintedValue(in);
      absl::StatusOr<storage::DeletePlan> plan =
          storage::DeleteStatement(e, keys, expected);
      if (fuzz::CheckResult(plan)) fuzz::CheckStatement(plan->statement);
      break;
    }
    default:
      fuzz::FuzzPage(in, e);
  }
  return 0;
}
