// Writes under faults: rowgate SIGKILLed in the middle of Insert storms
// leaves every statement all or nothing (each acknowledged Insert's rows all
// present, no partial multi-row insert), and where the API has request_id,
// retrying each Insert with its request_id after the restart completes each
// write exactly once; optimistic writers racing on one row lose no update.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/common/test_database.h"
#include "tests/e2e/e2e_helpers.h"
#include "tests/e2e/rowgate_process.h"

namespace rowgate::faults {
namespace {

using e2e::Client;
using e2e::Int;
using e2e::RowgateProcess;
using e2e::Str;
using testing::ExecSql;
namespace v1 = ::rowgate::v1;

// The request_id field of a write request, or null while the API has none
// (the idempotent-write feature; found by name so this test needs no edit
// when it lands).
const google::protobuf::FieldDescriptor* RequestIdField(
    const google::protobuf::Message& request) {
  return request.GetDescriptor()->FindFieldByName("request_id");
}

void SetRequestId(google::protobuf::Message* request, const std::string& id) {
  const auto* field = RequestIdField(*request);
  const auto* reflection = request->GetReflection();
  if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
    reflection->SetString(request, field, id);
  } else {
    ADD_FAILURE() << "request_id is not a string field";
  }
}

// One Insert of the storm: `rows` users whose surname is `tag`.
struct Attempt {
  std::string tag;
  int rows = 0;
  bool acknowledged = false;
  std::vector<int64_t> ids;  // as the acknowledgement returned them
};

v1::InsertRequest InsertRequestFor(const Attempt& attempt) {
  v1::InsertRequest request;
  request.set_entity("users");
  for (int r = 0; r < attempt.rows; ++r) {
    *request.add_rows() =
        e2e::MakeRow({{"name", Str(absl::StrCat("r", r))},
                      {"surname", Str(attempt.tag)},
                      {"email", Str(absl::StrCat(r, "@", attempt.tag))}});
  }
  if (RequestIdField(request) != nullptr) SetRequestId(&request, attempt.tag);
  return request;
}

// Rows stored per tag, for tags starting with `prefix`.
std::map<std::string, int> RowsByTag(const std::string& prefix) {
  std::map<std::string, int> out;
  for (const auto& row : ExecSql(absl::StrCat(
           "SELECT surname, count(*) FROM users WHERE surname LIKE ",
           e2e::SqlQuote(prefix + "%"), " GROUP BY surname"))) {
    out[row.at(0)] = std::stoi(row.at(1));
  }
  return out;
}

TEST(WriteFaultsTest, SigkillDuringInsertStormsLeavesEveryInsertAllOrNothing) {
  auto server = RowgateProcess::Start({"--pool_size=4"});
  ASSERT_NE(server, nullptr);
  const std::string prefix = e2e::UniqueTag("storm");
  constexpr int kThreads = 8;
  constexpr int kMaxPerThread = 2000;  // a bound; the kill comes far sooner
  constexpr int kKillAfterAcks = 300;
  std::vector<std::vector<Attempt>> attempts(kThreads);
  std::atomic<int> acks{0};
  absl::Notification enough;
  std::vector<std::thread> writers;
  {
    Client client(server->NewChannel());
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < kMaxPerThread; ++i) {
          // 1 to 20 rows: multi-row statements in flight when it dies.
          Attempt attempt{absl::StrCat(prefix, "-", t, "-", i),
                          1 + (i * 7 + t) % 20};
          v1::InsertResponse response;
          const grpc::Status status =
              client.Insert(InsertRequestFor(attempt), &response);
          attempt.acknowledged =
              status.ok() && response.rows_size() == attempt.rows;
          if (attempt.acknowledged) attempt.ids = e2e::IdsOf(response.rows());
          attempts[t].push_back(attempt);
          if (!status.ok()) return;  // rowgate is gone
          if (++acks == kKillAfterAcks) enough.Notify();
        }
      });
    }
    ASSERT_TRUE(enough.WaitForNotificationWithTimeout(absl::Seconds(60)))
        << "only " << acks.load() << " Inserts acknowledged";
    server->Kill();
    for (auto& t : writers) t.join();
  }

  const std::map<std::string, int> stored = RowsByTag(prefix);
  int acknowledged = 0, unacknowledged = 0, unacknowledged_stored = 0;
  for (const auto& per_thread : attempts) {
    for (const Attempt& a : per_thread) {
      SCOPED_TRACE(a.tag);
      const auto it = stored.find(a.tag);
      const int rows = it == stored.end() ? 0 : it->second;
      if (a.acknowledged) {
        ++acknowledged;
        EXPECT_EQ(rows, a.rows) << "an acknowledged Insert lost rows";
      } else {
        ++unacknowledged;
        if (rows != 0) ++unacknowledged_stored;
        EXPECT_THAT(rows, ::testing::AnyOf(0, a.rows))
            << "a partial multi-row Insert";
      }
    }
  }
  std::cout << "[ faults   ] SIGKILL after " << acknowledged
            << " acknowledged Inserts; " << unacknowledged
            << " in flight, of which " << unacknowledged_stored
            << " were stored whole, the rest not at all" << std::endl;
  EXPECT_GE(acknowledged, kKillAfterAcks);

  // The retry a client makes after the crash: every Insert again, with its
  // request_id. Exactly once: the stored ones are not stored twice, and the
  // lost ones are stored now.
  v1::InsertRequest probe;
  if (RequestIdField(probe) == nullptr) {
    std::cout << "[ faults   ] no request_id in InsertRequest: the "
                 "idempotent retry is not checked"
              << std::endl;
    return;
  }
  auto restarted = RowgateProcess::Start({"--pool_size=4"});
  ASSERT_NE(restarted, nullptr);
  Client client(restarted->NewChannel());
  for (const auto& per_thread : attempts) {
    for (const Attempt& a : per_thread) {
      v1::InsertResponse response;
      EXPECT_THAT(client.Insert(InsertRequestFor(a), &response), e2e::IsOk())
          << a.tag;
      // An acknowledged write answers its first answer again.
      if (a.acknowledged) {
        EXPECT_EQ(e2e::IdsOf(response.rows()), a.ids) << a.tag;
      }
    }
  }
  const std::map<std::string, int> after = RowsByTag(prefix);
  std::cout << "[ faults   ] retried all " << acknowledged + unacknowledged
            << " Inserts with their request_id after a restart (of the "
            << unacknowledged << " unacknowledged, " << unacknowledged_stored
            << " had been stored)" << std::endl;
  for (const auto& per_thread : attempts) {
    for (const Attempt& a : per_thread) {
      const auto it = after.find(a.tag);
      EXPECT_EQ(it == after.end() ? 0 : it->second, a.rows)
          << a.tag << (a.acknowledged ? " (acknowledged)" : " (in flight)");
    }
  }
}

// 32 clients x 50 increments of one counter, each read-modify-write an
// Update carrying the lastchange it read, retried on ABORTED: no increment
// is lost and none is applied twice.
TEST(WriteFaultsTest, OptimisticIncrementsFromManyClientsEndExact) {
  auto server = RowgateProcess::Start({"--pool_size=8"});
  ASSERT_NE(server, nullptr);
  const int64_t id = std::stoll(
      ExecSql("INSERT INTO users (name, \"externalId\") VALUES ('counter', 0) "
              "RETURNING id")
          .at(0)
          .at(0));
  constexpr int kClients = 32;
  constexpr int kIncrements = 50;
  constexpr int kMaxAttempts = 100000;  // per client, a bound
  std::atomic<int> applied{0}, conflicts{0}, errors{0};
  std::vector<std::thread> clients;
  const absl::Time start = absl::Now();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      Client client(server->NewChannel());
      int done = 0;
      for (int attempt = 0; done < kIncrements && attempt < kMaxAttempts;
           ++attempt) {
        v1::BatchGetResponse read;
        grpc::Status status =
            client.BatchGet(e2e::BatchGetRequest("users", {Int(id)}), &read);
        if (!status.ok() || read.results_size() != 1 ||
            read.results(0).rows_size() != 1) {
          ++errors;
          return;
        }
        const v1::Row& row = read.results(0).rows(0);
        v1::UpdateRequest update;
        update.set_entity("users");
        *update.mutable_row() = e2e::MakeRow(
            {{"id", Int(id)},
             {"externalId",
              Int(row.fields().at("externalId").int64_value() + 1)},
             {"lastchange", row.fields().at("lastchange")}});
        v1::UpdateResponse response;
        status = client.Update(update, &response);
        if (status.ok()) {
          ++done;
          ++applied;
        } else if (status.error_code() == grpc::StatusCode::ABORTED) {
          ++conflicts;
        } else {
          ++errors;
          return;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  const absl::Duration took = absl::Now() - start;
  const std::string counter =
      ExecSql(absl::StrCat("SELECT \"externalId\" FROM users WHERE id = ", id))
          .at(0)
          .at(0);
  std::cout << "[ faults   ] " << kClients << " x " << kIncrements
            << " optimistic increments: " << applied.load() << " applied, "
            << conflicts.load() << " ABORTED and retried, in " << took
            << std::endl;
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(applied.load(), kClients * kIncrements);
  EXPECT_EQ(counter, absl::StrCat(kClients * kIncrements));
}

}  // namespace
}  // namespace rowgate::faults
