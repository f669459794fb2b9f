#include "storage/deadline_watchdog.h"

#include <utility>

#include "absl/time/clock.h"

namespace rowgate::storage {

DeadlineWatchdog::DeadlineWatchdog() : thread_([this] { Loop(); }) {}

DeadlineWatchdog::~DeadlineWatchdog() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  changed_.SignalAll();
  thread_.join();
}

uint64_t DeadlineWatchdog::Arm(absl::Time deadline,
                               absl::AnyInvocable<void()> cancel) {
  uint64_t id;
  bool earlier;
  {
    MutexLock lock(&mu_);
    id = next_id_++;
    armed_.emplace(id, Entry{deadline, std::move(cancel)});
    // Every statement arms an alarm: wake the loop only when it would
    // otherwise sleep past this one.
    earlier = deadline < wake_at_;
  }
  if (earlier) changed_.SignalAll();
  return id;
}

bool DeadlineWatchdog::Disarm(uint64_t id) {
  MutexLock lock(&mu_);
  while (firing_ == id) changed_.Wait(&mu_);
  return armed_.erase(id) == 1;
}

void DeadlineWatchdog::Expedite(uint64_t id) {
  {
    MutexLock lock(&mu_);
    auto it = armed_.find(id);
    if (it == armed_.end()) return;
    it->second.deadline = absl::InfinitePast();
  }
  changed_.SignalAll();
}

void DeadlineWatchdog::Loop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    uint64_t due = 0;
    for (const auto& [id, entry] : armed_) {
      if (entry.deadline <= now) {
        due = id;
        break;
      }
      next = std::min(next, entry.deadline);
    }
    if (due != 0) {
      auto node = armed_.extract(due);
      firing_ = due;
      mu_.Unlock();
      std::move(node.mapped().cancel)();
      mu_.Lock();
      firing_ = 0;
      changed_.SignalAll();
      continue;
    }
    wake_at_ = next;
    changed_.WaitWithDeadline(&mu_, next);
    wake_at_ = absl::InfinitePast();
  }
}

}  // namespace rowgate::storage
