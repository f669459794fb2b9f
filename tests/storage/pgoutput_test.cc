// The pgoutput decoder on hand-built protocol-version-1 messages (the byte
// layouts of PostgreSQL's "Logical Replication Message Formats").
#include "storage/pgoutput.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "storage/value.h"
#include "tests/storage/recording_listener.h"

namespace rowgate::storage {
namespace {

using ::rowgate::testing::FeedEvent;
using ::rowgate::testing::RecordingListener;

// Builds one message, big-endian as on the wire.
class Msg {
 public:
  explicit Msg(char type) { s_.push_back(type); }
  Msg& Int(uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) {
      s_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    return *this;
  }
  Msg& Byte(char c) {
    s_.push_back(c);
    return *this;
  }
  Msg& Str(const std::string& v) {
    s_ += v;
    s_.push_back('\0');
    return *this;
  }
  // TupleData: nullopt is 'n' (null), "\x01u" is 'u' (unchanged TOAST).
  Msg& Tuple(const std::vector<std::optional<std::string>>& columns) {
    Int(columns.size(), 2);
    for (const auto& c : columns) {
      if (!c) {
        Byte('n');
      } else if (*c == "\x01u") {
        Byte('u');
      } else {
        Byte('t').Int(c->size(), 4);
        s_ += *c;
      }
    }
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

std::string Begin() { return Msg('B').Int(0x500, 8).Int(1, 8).Int(7, 4).str(); }
std::string Commit(Lsn lsn) {
  return Msg('C').Byte(0).Int(lsn, 8).Int(lsn + 0x30, 8).Int(1, 8).str();
}
// A Relation message: columns by name, the key flagged.
std::string Relation(uint32_t oid, const std::string& nsp,
                     const std::string& rel,
                     const std::vector<std::string>& columns,
                     const std::string& key = "id") {
  Msg m('R');
  m.Int(oid, 4).Str(nsp).Str(rel).Byte('d').Int(columns.size(), 2);
  for (const std::string& c : columns) {
    m.Byte(c == key ? 1 : 0).Str(c).Int(25, 4).Int(0xffffffff, 4);
  }
  return m.str();
}

Column MakeColumn(const std::string& name, ColumnType type) {
  Column c;
  c.name = name;
  c.quoted_name = QuoteIdentifier(name);
  c.type = type;
  return c;
}

Entity MakeEntity(const std::string& name, ColumnType key_type) {
  Entity e;
  e.name = name;
  e.qualified_name = "\"public\".\"" + name + "\"";
  e.columns = {MakeColumn("id", key_type),
               MakeColumn("name", ColumnType::kText)};
  e.primary_key = 0;
  return e;
}

class PgOutputTest : public ::testing::Test {
 protected:
  PgOutputTest()
      : catalog_(
            Catalog::FromEntities({MakeEntity("users", ColumnType::kInt64),
                                   MakeEntity("tags", ColumnType::kText),
                                   MakeEntity("docs", ColumnType::kUuid)})),
        decoder_(Pointers(), &listener_) {}

  std::vector<const Entity*> Pointers() {
    std::vector<const Entity*> out;
    for (const Entity& e : catalog_->entities()) out.push_back(&e);
    return out;
  }
  void Feed(const std::string& message) {
    absl::Status s = decoder_.Decode(message);
    ASSERT_TRUE(s.ok()) << s;
  }
  std::vector<std::string> Events() {
    std::vector<std::string> out;
    for (const FeedEvent& e : listener_.events()) {
      out.push_back(e.DebugString());
    }
    return out;
  }

  std::shared_ptr<const Catalog> catalog_;
  RecordingListener listener_;
  PgOutputDecoder decoder_;
};

TEST_F(PgOutputTest, InsertUpdateDeleteKeysArriveOnlyAtCommit) {
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Msg('I').Int(16400, 4).Byte('N').Tuple({"1", "ann"}).str());
  Feed(Msg('U').Int(16400, 4).Byte('N').Tuple({"2", "bob"}).str());
  Feed(Msg('D').Int(16400, 4).Byte('K').Tuple({"3", std::nullopt}).str());
  EXPECT_TRUE(decoder_.in_transaction());
  EXPECT_TRUE(Events().empty());
  Feed(Commit(0x1234));
  EXPECT_FALSE(decoder_.in_transaction());
  EXPECT_EQ(decoder_.last_commit_end(), 0x1234u + 0x30);
  ASSERT_EQ(listener_.events().size(), 1u);
  EXPECT_EQ(listener_.events()[0].lsn, 0x1234u);
  EXPECT_EQ(Events(),
            (std::vector<std::string>{"commit(users:1,users:2,users:3)"}));
}

// REPLICA IDENTITY DEFAULT sends the old key only when the key changed.
TEST_F(PgOutputTest, UpdateOfKeyReportsOldAndNewKey) {
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Msg('U')
           .Int(16400, 4)
           .Byte('K')
           .Tuple({"5", std::nullopt})
           .Byte('N')
           .Tuple({"6", "x"})
           .str());
  // REPLICA IDENTITY FULL: the whole old row.
  Feed(Msg('U')
           .Int(16400, 4)
           .Byte('O')
           .Tuple({"7", "y"})
           .Byte('N')
           .Tuple({"8", "y"})
           .str());
  Feed(Commit(0x10));
  EXPECT_EQ(
      Events(),
      (std::vector<std::string>{"commit(users:5,users:6,users:7,users:8)"}));
}

TEST_F(PgOutputTest, KeysAreDistinctPerTransactionAndGroupedByEntity) {
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Relation(16500, "public", "tags", {"name", "id"}));  // key second
  Feed(Msg('I').Int(16400, 4).Byte('N').Tuple({"1", "a"}).str());
  Feed(Msg('I').Int(16500, 4).Byte('N').Tuple({"n", "red"}).str());
  Feed(Msg('U').Int(16400, 4).Byte('N').Tuple({"1", "b"}).str());
  Feed(Msg('D').Int(16400, 4).Byte('K').Tuple({"1", std::nullopt}).str());
  Feed(Commit(0x20));
  EXPECT_EQ(Events(), (std::vector<std::string>{"commit(users:1,tags:red)"}));
}

TEST_F(PgOutputTest, TruncateReportsTheEntityAtCommit) {
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Relation(16500, "public", "tags", {"id", "name"}));
  Feed(Msg('T').Int(2, 4).Byte(0).Int(16400, 4).Int(16500, 4).str());
  EXPECT_TRUE(Events().empty());
  Feed(Commit(0x40));
  EXPECT_EQ(Events(), (std::vector<std::string>{"truncate(users)",
                                                "truncate(tags)", "commit()"}));
  EXPECT_EQ(listener_.events()[0].lsn, 0x40u);
}

TEST_F(PgOutputTest, OtherTablesAndSchemasAreSkipped) {
  Feed(Begin());
  Feed(Relation(16600, "public", "audit", {"id", "name"}));
  Feed(Relation(16700, "other", "users", {"id", "name"}));
  Feed(Msg('I').Int(16600, 4).Byte('N').Tuple({"1", "a"}).str());
  Feed(Msg('I').Int(16700, 4).Byte('N').Tuple({"1", "a"}).str());
  Feed(Msg('T').Int(1, 4).Byte(0).Int(16600, 4).str());
  Feed(Commit(0x50));
  EXPECT_TRUE(Events().empty());
}

TEST_F(PgOutputTest, OriginTypeAndMessageAreIgnored) {
  Feed(Begin());
  Feed(Msg('O').Int(0x99, 8).Str("elsewhere").str());
  Feed(Msg('Y').Int(17000, 4).Str("public").Str("mood").str());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Msg('M').Byte(1).Int(0x60, 8).Str("p").Int(0, 4).str());
  Feed(Msg('I').Int(16400, 4).Byte('N').Tuple({"9", "a"}).str());
  Feed(Commit(0x60));
  EXPECT_EQ(Events(), (std::vector<std::string>{"commit(users:9)"}));
}

// A key that cannot be read means any row may have changed.
TEST_F(PgOutputTest, UnreadableKeyReportsTheWholeEntity) {
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Msg('U').Int(16400, 4).Byte('N').Tuple({"\x01u", "a"}).str());
  Feed(Commit(0x70));
  // An identity index without the key: the old tuple's key is null.
  Feed(Begin());
  Feed(Msg('D').Int(16400, 4).Byte('K').Tuple({std::nullopt, "a"}).str());
  Feed(Commit(0x80));
  // A table whose key column the relation does not list.
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"uid", "name"}));
  Feed(Msg('I').Int(16400, 4).Byte('N').Tuple({"1", "a"}).str());
  Feed(Commit(0x90));
  EXPECT_EQ(Events(), (std::vector<std::string>{
                          "truncate(users)", "commit()", "truncate(users)",
                          "commit()", "truncate(users)", "commit()"}));
}

// A bulk change of more rows than the bound reports the entity whole, not
// its keys; other entities of the transaction keep theirs.
TEST_F(PgOutputTest, TooManyKeysReportTheWholeEntity) {
  PgOutputDecoder small(Pointers(), &listener_, /*max_keys=*/3);
  ASSERT_TRUE(small.Decode(Begin()).ok());
  ASSERT_TRUE(
      small.Decode(Relation(16400, "public", "users", {"id", "name"})).ok());
  ASSERT_TRUE(
      small.Decode(Relation(16500, "public", "tags", {"id", "name"})).ok());
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(small
                    .Decode(Msg('U')
                                .Int(16400, 4)
                                .Byte('N')
                                .Tuple({std::to_string(i), "x"})
                                .str())
                    .ok());
  }
  ASSERT_TRUE(
      small.Decode(Msg('I').Int(16500, 4).Byte('N').Tuple({"t", "x"}).str())
          .ok());
  ASSERT_TRUE(small.Decode(Commit(0x200)).ok());
  EXPECT_EQ(Events(),
            (std::vector<std::string>{"truncate(users)", "commit(tags:t)"}));
}

TEST_F(PgOutputTest, ResetForgetsTheOpenTransactionAndRelations) {
  Feed(Begin());
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  Feed(Msg('I').Int(16400, 4).Byte('N').Tuple({"1", "a"}).str());
  decoder_.Reset();  // the stream broke mid-transaction
  EXPECT_FALSE(decoder_.in_transaction());
  Feed(Begin());
  absl::Status s =
      decoder_.Decode(Msg('I').Int(16400, 4).Byte('N').Tuple({"2", "a"}).str());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(Events().empty());
}

TEST_F(PgOutputTest, MalformedMessagesAreDataLoss) {
  const std::string insert =
      Msg('I').Int(16400, 4).Byte('N').Tuple({"1", "a"}).str();
  // A change outside a transaction.
  EXPECT_EQ(decoder_.Decode(insert).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decoder_.Decode(Commit(1)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decoder_.Decode("").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decoder_.Decode("Z").code(), absl::StatusCode::kDataLoss);
  Feed(Begin());
  EXPECT_EQ(decoder_.Decode(Begin()).code(), absl::StatusCode::kDataLoss);
  Feed(Relation(16400, "public", "users", {"id", "name"}));
  // Every cut of a valid insert is refused, none reads past the end.
  for (size_t n = 0; n < insert.size(); ++n) {
    EXPECT_EQ(decoder_.Decode(insert.substr(0, n)).code(),
              absl::StatusCode::kDataLoss)
        << n;
  }
  EXPECT_EQ(decoder_.Decode(insert + "x").code(), absl::StatusCode::kDataLoss);
  // A tuple value whose length runs past the end.
  EXPECT_EQ(decoder_
                .Decode(Msg('I')
                            .Int(16400, 4)
                            .Byte('N')
                            .Int(1, 2)
                            .Byte('t')
                            .Int(0x7fffffff, 4)
                            .str())
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(decoder_.Decode(Msg('D').Int(16400, 4).Byte('N').str()).code(),
            absl::StatusCode::kDataLoss);
  Feed(Commit(0x100));
  EXPECT_TRUE(Events().empty());
}

// The key text a change reports equals the one a lookup of the row uses:
// KeyText of the value read back (table_ops' FetchByKeys) and CanonicalKey
// of the key a client asks for.
TEST(KeyFromOutputTest, MatchesTheLookupKeyForEveryKeyType) {
  struct Case {
    ColumnType type;
    std::string output;  // PostgreSQL's text output
    std::string key;     // the canonical text
  };
  const std::vector<Case> cases = {
      {ColumnType::kInt64, "-9223372036854775808", "-9223372036854775808"},
      {ColumnType::kInt64, "42", "42"},
      {ColumnType::kInt32, "2147483647", "2147483647"},
      {ColumnType::kInt16, "-7", "-7"},
      {ColumnType::kText, "Ab c ", "Ab c "},
      {ColumnType::kText, "", ""},
      {ColumnType::kText, "\xC3\xA9t\xC3\xA9", "\xC3\xA9t\xC3\xA9"},
      {ColumnType::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
       "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
  };
  for (const Case& c : cases) {
    const Column key = MakeColumn("id", c.type);
    EXPECT_EQ(KeyFromOutput(key, c.output), c.key) << c.output;
    EXPECT_EQ(KeyFromOutput(key, c.output),
              KeyText(ParseText(c.type, c.output)))
        << c.output;
  }
  // A client may ask for a uuid in upper case or without hyphens: its
  // canonical key is the output's.
  const Column uuid = MakeColumn("id", ColumnType::kUuid);
  for (const char* asked : {"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                            "a0eebc999c0b4ef8bb6d6bb9bd380a11"}) {
    absl::StatusOr<std::string> canonical =
        CanonicalKey("id", ColumnType::kUuid, std::string(asked));
    ASSERT_TRUE(canonical.ok());
    EXPECT_EQ(*canonical,
              KeyFromOutput(uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  }
  absl::StatusOr<std::string> big =
      CanonicalKey("id", ColumnType::kInt64, int64_t{42});
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(*big, KeyFromOutput(MakeColumn("id", ColumnType::kInt64), "42"));
}

// Types that cannot be lookup keys (IsKeyType) keep PostgreSQL's text: no
// lookup can ask for them, so the text only has to be stable.
TEST(KeyFromOutputTest, NonLookupTypesKeepTheOutputText) {
  EXPECT_FALSE(IsKeyType(ColumnType::kTimestamp));
  EXPECT_EQ(KeyFromOutput(MakeColumn("at", ColumnType::kTimestamp),
                          "2024-01-02 03:04:05.5"),
            "2024-01-02 03:04:05.5");
  EXPECT_EQ(KeyFromOutput(MakeColumn("n", ColumnType::kNumeric), "1.50"),
            "1.50");
}

}  // namespace
}  // namespace rowgate::storage
