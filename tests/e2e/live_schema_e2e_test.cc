// End-to-end: migrations applied while rowgate runs and a client keeps
// calling. Each DDL (ADD COLUMN, ALTER TYPE, DROP COLUMN, CREATE TABLE) is
// picked up without a restart: DescribeEntity / ListEntities show it within
// a bounded wait, at most the one call that races the DDL fails, and a
// dropped column is INVALID_ARGUMENT naming it.
#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"

namespace rowgate::e2e {
namespace {

using ::rowgate::testing::ExecSql;
using ::testing::HasSubstr;

constexpr absl::Duration kPickUpBound = absl::Seconds(10);

class LiveSchemaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ExecSql(R"sql(
      DROP SCHEMA IF EXISTS live_e2e CASCADE;
      CREATE SCHEMA live_e2e;
      CREATE TABLE live_e2e.things (
        id bigint PRIMARY KEY DEFAULT nextval('all_id_seq'),
        label text, n int, note text);
      INSERT INTO live_e2e.things (id, label, n, note) VALUES (1, 'one', 1, 'x');
    )sql");
    server_ = RowgateProcess::Start(
                  {"--schema=live_e2e", "--schema_poll_interval_ms=200"})
                  .release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    client_ = std::make_unique<Client>(server_->NewChannel());
  }

  // The entity's description, or one with no name when it is unknown.
  v1::EntityDescription Describe(const std::string& entity) {
    v1::DescribeEntityRequest request;
    request.set_entity(entity);
    v1::EntityDescription description;
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    if (!client_->data()
             ->DescribeEntity(context.get(), request, &description)
             .ok()) {
      return v1::EntityDescription();
    }
    return description;
  }

  // The type DescribeEntity gives `column` of `entity` ("" if absent).
  std::string ColumnType(const std::string& entity, const std::string& column) {
    const v1::EntityDescription description = Describe(entity);
    for (const v1::ColumnDescription& c : description.columns()) {
      if (c.name() == column) return c.type();
    }
    return "";
  }

  // Waits (bounded) until `done()` holds; false if it never did.
  template <typename Done>
  static bool WaitFor(Done done) {
    const absl::Time until = absl::Now() + kPickUpBound;
    while (absl::Now() < until) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(20));  // polling the server, bounded
    }
    return done();
  }

  static inline RowgateProcess* server_ = nullptr;
  std::unique_ptr<Client> client_;
};

// A client that alternates BatchGet (every column) and Insert on things
// until stopped, recording the calls that failed.
class BusyClient {
 public:
  explicit BusyClient(std::shared_ptr<grpc::Channel> channel)
      : client_(std::move(channel)), thread_([this] { Run(); }) {
    started_.WaitForNotificationWithTimeout(absl::Seconds(10));
  }
  ~BusyClient() {
    stop_ = true;
    thread_.join();
  }
  // The failures since the last call, and how many calls succeeded.
  std::vector<std::string> TakeFailures(int* ok_calls) {
    absl::MutexLock lock(&mu_);
    *ok_calls = ok_;
    ok_ = 0;
    return std::move(failures_);
  }

 private:
  void Run() {
    // Bounded: at most this many calls, or a minute.
    const absl::Time until = absl::Now() + absl::Minutes(1);
    for (int i = 0; i < 200000 && !stop_ && absl::Now() < until; ++i) {
      grpc::Status status;
      if (i % 2 == 0) {
        v1::BatchGetResponse response;
        status =
            client_.BatchGet(BatchGetRequest("things", Ints({1})), &response);
        if (status.ok() && !response.results(0).found()) {
          status = grpc::Status(grpc::StatusCode::INTERNAL, "row 1 not found");
        }
      } else {
        v1::InsertRequest insert;
        insert.set_entity("things");
        *insert.add_rows() = MakeRow({{"label", Str("busy")}});
        v1::InsertResponse response;
        status = client_.Insert(insert, &response);
      }
      absl::MutexLock lock(&mu_);
      if (status.ok()) {
        ++ok_;
      } else {
        failures_.push_back(
            absl::StrCat(status.error_code(), " ", status.error_message()));
      }
      if (i == 0) started_.Notify();
    }
    if (!started_.HasBeenNotified()) started_.Notify();
  }

  Client client_;
  std::atomic<bool> stop_{false};
  absl::Notification started_;
  absl::Mutex mu_;
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
  int ok_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

TEST_F(LiveSchemaTest, MigrationsArePickedUpWhileAClientKeepsCalling) {
  BusyClient busy(server_->NewChannel());
  // After each DDL: the change shows within the bound, then 20 more calls
  // succeed, and of all the calls since the DDL at most one (the one that
  // raced it) failed.
  auto check_phase = [&](const std::string& ddl, auto shows) {
    int ok = 0;
    std::vector<std::string> failures = busy.TakeFailures(&ok);
    EXPECT_THAT(failures, ::testing::IsEmpty()) << "before " << ddl;
    ExecSql(ddl);
    EXPECT_TRUE(WaitFor(shows)) << "not picked up: " << ddl;
    std::vector<std::string> phase = busy.TakeFailures(&ok);
    int after = 0;
    EXPECT_TRUE(WaitFor([&] {
      std::vector<std::string> more = busy.TakeFailures(&ok);
      phase.insert(phase.end(), more.begin(), more.end());
      after += ok;
      return after >= 20;
    })) << "the client stopped getting answers after "
        << ddl;
    EXPECT_LE(phase.size(), 1u)
        << ddl << ": " << ::testing::PrintToString(phase);
    std::fprintf(stderr, "%s: %zu failed call(s) %s\n", ddl.c_str(),
                 phase.size(), ::testing::PrintToString(phase).c_str());
  };

  check_phase("ALTER TABLE live_e2e.things ADD COLUMN extra text DEFAULT 'e'",
              [&] { return ColumnType("things", "extra") == "text"; });
  check_phase("ALTER TABLE live_e2e.things ALTER COLUMN n TYPE bigint",
              [&] { return ColumnType("things", "n") == "bigint"; });
  check_phase("ALTER TABLE live_e2e.things DROP COLUMN note",
              [&] { return ColumnType("things", "note").empty(); });
  check_phase("CREATE TABLE live_e2e.newer (id bigint PRIMARY KEY, what text)",
              [&] { return Describe("newer").name() == "newer"; });

  // The new shape is served: the added column with its default, the
  // retyped one, and the new table.
  v1::Row row = client_->MustGet("things", 1);
  EXPECT_EQ(Field(row, "extra").string_value(), "e");
  EXPECT_EQ(Field(row, "n").int64_value(), 1);
  v1::InsertRequest insert;
  insert.set_entity("newer");
  *insert.add_rows() = MakeRow({{"id", Int(1)}, {"what", Str("new")}});
  v1::InsertResponse inserted;
  EXPECT_THAT(client_->Insert(insert, &inserted), IsOk());

  // A dropped column is INVALID_ARGUMENT naming it.
  v1::BatchGetResponse response;
  EXPECT_THAT(
      client_->BatchGet(BatchGetRequest("things", Ints({1}), "", {"note"}),
                        &response),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("\"note\"")));
  v1::InsertRequest with_note;
  with_note.set_entity("things");
  *with_note.add_rows() = MakeRow({{"note", Str("gone")}});
  EXPECT_THAT(
      client_->Insert(with_note, &inserted),
      StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("\"note\"")));
}

}  // namespace
}  // namespace rowgate::e2e
