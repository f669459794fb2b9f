// A loader::BatchExecutor for the stream reactor's tests: runs loader tasks
// on its own threads; every fetch is recorded and waits at a gate the test
// controls, and Run() itself can be held. Keys "1".."100" of the
// memory-backend catalog's "users" exist. std::mutex throughout, so
// ThreadSanitizer sees the synchronization.
#ifndef ROWGATE_TESTS_SERVICE_GATED_EXECUTOR_H_
#define ROWGATE_TESTS_SERVICE_GATED_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "loader/batch_loader.h"

namespace rowgate::service {

class GatedExecutor : public loader::BatchExecutor {
 public:
  explicit GatedExecutor(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~GatedExecutor() override { Shutdown(); }

  // Opens the gate, runs what is queued, joins the threads. Idempotent.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
      hold_runs_ = false;
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  void Run(Task task) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (hold_runs_) {
        ++held_runs_;
        changed_.notify_all();
        changed_.wait(lock, [&] { return !hold_runs_; });
      }
      tasks_.push_back(std::move(task));
    }
    changed_.notify_all();
  }
  // While held, Run() blocks its caller (the loader, inside Load) until
  // released: a lookup then stays half-started, its ticket not yet returned.
  void HoldRuns(bool hold) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_runs_ = hold;
    }
    changed_.notify_all();
  }
  // Blocks until `n` Run() calls are (or were) held.
  void AwaitHeldRuns(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return held_runs_ >= n; });
  }
  void SetOpen(bool open) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = open;
    }
    changed_.notify_all();
  }
  // Blocks until `n` fetches have started.
  void AwaitFetches(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return fetches_.size() >= n; });
  }
  std::vector<std::vector<std::string>> fetches() {
    std::lock_guard<std::mutex> lock(mu_);
    return fetches_;
  }

 private:
  absl::StatusOr<storage::KeyedRows> Fetch(
      const std::vector<std::string>& keys) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      fetches_.push_back(keys);
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_; });
    }
    storage::KeyedRows rows;
    for (const std::string& key : keys) {
      int64_t id;
      if (absl::SimpleAtoi(key, &id) && id >= 1 && id <= 100) {
        rows.by_key[key].push_back(
            {id, absl::StrCat("Name", id), absl::StrCat("Surname", id),
             absl::StrCat("user", id, "@example.com"),
             storage::Timestamp{1700000000000000 + id}, id + 1000});
      }
    }
    return rows;
  }

  void Work() {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        changed_.wait(lock, [&] { return !tasks_.empty() || stopping_; });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      std::move(task)(
          [this](const storage::Entity&, int,
                 const std::vector<std::string>& keys, absl::Time,
                 storage::StatementCancel*) { return Fetch(keys); });
    }
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Task> tasks_;
  std::vector<std::vector<std::string>> fetches_;
  bool open_ = false;
  bool stopping_ = false;
  bool hold_runs_ = false;
  int held_runs_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace rowgate::service

#endif  // ROWGATE_TESTS_SERVICE_GATED_EXECUTOR_H_
