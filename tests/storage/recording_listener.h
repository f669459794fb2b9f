// A ChangeListener for tests: records every call in order and lets a test
// wait (bounded) until the record satisfies a condition. Thread-safe.
#ifndef ROWGATE_TESTS_STORAGE_RECORDING_LISTENER_H_
#define ROWGATE_TESTS_STORAGE_RECORDING_LISTENER_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "storage/change_listener.h"

namespace rowgate::testing {

struct FeedEvent {
  enum Kind { kCommit, kTruncate, kInterrupted, kLive } kind;
  storage::Lsn lsn = 0;
  // kCommit: "entity:key" for every changed key, in the order given;
  // kTruncate: the entity's name; kInterrupted: the status.
  std::vector<std::string> items;

  std::string DebugString() const {
    static const char* kNames[] = {"commit", "truncate", "interrupted", "live"};
    return absl::StrCat(kNames[kind], "(", absl::StrJoin(items, ","), ")");
  }
};

class RecordingListener : public storage::ChangeListener {
 public:
  void OnCommit(storage::Lsn commit_lsn,
                const std::vector<storage::ChangedKeys>& changes) override {
    FeedEvent e{FeedEvent::kCommit, commit_lsn, {}};
    for (const storage::ChangedKeys& c : changes) {
      for (const std::string& k : c.keys) {
        e.items.push_back(absl::StrCat(c.entity->name, ":", k));
      }
    }
    Add(std::move(e));
  }
  void OnTruncate(storage::Lsn lsn, const storage::Entity& entity) override {
    Add({FeedEvent::kTruncate, lsn, {entity.name}});
  }
  void OnInterrupted(const absl::Status& why) override {
    Add({FeedEvent::kInterrupted, 0, {why.ToString()}});
  }
  void OnLive(storage::Lsn lsn) override { Add({FeedEvent::kLive, lsn, {}}); }

  std::vector<FeedEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

  // Waits until `done(events)` holds; false after `timeout`.
  bool WaitUntil(const std::function<bool(const std::vector<FeedEvent>&)>& done,
                 absl::Duration timeout = absl::Seconds(30)) const {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoSeconds(timeout),
                             [&] { return done(events_); });
  }

  // Waits until at least `n` events of `kind` have been recorded.
  bool WaitForCount(FeedEvent::Kind kind, size_t n,
                    absl::Duration timeout = absl::Seconds(30)) const {
    return WaitUntil(
        [&](const std::vector<FeedEvent>& events) {
          size_t count = 0;
          for (const FeedEvent& e : events) count += e.kind == kind;
          return count >= n;
        },
        timeout);
  }

 private:
  void Add(FeedEvent e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(e));
    }
    changed_.notify_all();
  }
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::vector<FeedEvent> events_;
};

}  // namespace rowgate::testing

#endif  // ROWGATE_TESTS_STORAGE_RECORDING_LISTENER_H_
