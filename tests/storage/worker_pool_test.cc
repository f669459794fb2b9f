// The worker pool's queueing rules under concurrency: many posting threads,
// tasks posting tasks, the queue bound, and the drain on Shutdown. No task
// touches its connection, so no database is needed (a Connection connects
// lazily); `make tsan` runs these under ThreadSanitizer.
#include "storage/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace rowgate::storage {
namespace {

// Never reached: the tasks here do not use their connection.
constexpr char kNoDatabase[] = "host=/nonexistent/rowgate-test port=1";

// A gate the test opens; std::mutex so ThreadSanitizer sees it.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  // Blocks until `n` callers are (or were) waiting at the gate.
  void AwaitWaiters(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

// Eight threads post 500 tasks each, a third of which post a follow-up task
// from the worker; Shutdown runs every one of them exactly once before the
// workers stop.
TEST(WorkerPoolTest, ManyPostersAndTasksPostingTasksAllRunBeforeShutdown) {
  constexpr int kPosters = 8;
  constexpr int kPerPoster = 500;
  std::vector<std::atomic<int>> runs(kPosters * kPerPoster * 2);
  std::atomic<int> follow_ups{0};
  Gate start;
  {
    WorkerPool pool({.database_url = kNoDatabase, .size = 4});
    std::vector<std::thread> posters;
    for (int p = 0; p < kPosters; ++p) {
      posters.emplace_back([&, p] {
        start.Wait();
        for (int i = 0; i < kPerPoster; ++i) {
          const int id = (p * kPerPoster + i) * 2;
          auto task = [&, id](Connection&) {
            runs[id].fetch_add(1);
            if (id % 3 == 0) {
              follow_ups.fetch_add(1);
              pool.Post([&, id](Connection&) { runs[id + 1].fetch_add(1); });
            }
          };
          if (i % 2 == 0) {
            pool.Post(task);
          } else {
            // The bound (10000) is above what can be queued here.
            ASSERT_TRUE(pool.TryPost(task).ok());
          }
        }
      });
    }
    start.Open();
    for (auto& t : posters) t.join();
    pool.Shutdown();
    EXPECT_EQ(pool.queued(), 0u);
  }
  int ran = 0;
  for (size_t id = 0; id < runs.size(); ++id) {
    const int expected = id % 2 == 0 || (id - 1) % 3 == 0 ? 1 : 0;
    ASSERT_EQ(runs[id].load(), expected) << "task " << id;
    ran += runs[id].load();
  }
  EXPECT_EQ(ran, kPosters * kPerPoster + follow_ups.load());
}

// With the only worker held, TryPost takes max_queued tasks and refuses the
// next with RESOURCE_EXHAUSTED; Shutdown then drains the queue, and after it
// TryPost answers UNAVAILABLE.
TEST(WorkerPoolTest, TryPostRefusesBeyondTheBoundAndShutdownDrains) {
  WorkerPool pool({.database_url = kNoDatabase, .size = 1, .max_queued = 5});
  Gate gate;
  std::atomic<int> ran{0};
  pool.Post([&](Connection&) {
    gate.Wait();
    ran.fetch_add(1);
  });
  gate.AwaitWaiters(1);  // the worker holds the first task: the queue is empty
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.TryPost([&](Connection&) { ran.fetch_add(1); }).ok());
  }
  EXPECT_EQ(pool.queued(), 5u);
  const absl::Status refused = pool.TryPost([&](Connection&) { ran += 100; });
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  // Post has no bound: for callers (the loader) that bound their own work.
  pool.Post([&](Connection&) { ran.fetch_add(1); });

  std::thread stopper([&] { pool.Shutdown(); });
  gate.Open();
  stopper.join();
  EXPECT_EQ(ran.load(), 7);
  const absl::Status late = pool.TryPost([&](Connection&) { ran += 100; });
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable) << late;
  EXPECT_EQ(ran.load(), 7);
}

}  // namespace
}  // namespace rowgate::storage
