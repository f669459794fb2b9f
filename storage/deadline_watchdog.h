// Runs a cancellation when a deadline passes, unless it was disarmed first:
// how a caller's gRPC deadline reaches PostgreSQL (Connection arms it around
// each statement and cancels the statement on the server, so a slow query
// never outlives its caller and the connection returns healthy to the pool).
//
// Thread-safe. One thread of its own, idle until something is armed. The
// cancel callbacks run on that thread, so they must not block (a callback
// that waits holds up every other alarm); Disarm() waits for a callback that
// is running, so what the callback touches stays valid until Disarm returns.
//
// Example:
//   uint64_t id = watchdog.Arm(deadline, [&conn] { conn.cancel_query(); });
//   ... run the statement ...
//   bool cancelled = !watchdog.Disarm(id);
#ifndef ROWGATE_STORAGE_DEADLINE_WATCHDOG_H_
#define ROWGATE_STORAGE_DEADLINE_WATCHDOG_H_

#include <cstdint>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "storage/mutex.h"

namespace rowgate::storage {

class DeadlineWatchdog {
 public:
  DeadlineWatchdog();
  // Fires nothing more; waits for a callback that is running.
  ~DeadlineWatchdog();
  DeadlineWatchdog(const DeadlineWatchdog&) = delete;
  DeadlineWatchdog& operator=(const DeadlineWatchdog&) = delete;

  // Runs `cancel` once `deadline` passes, unless Disarm(id) comes first.
  // Never blocks.
  uint64_t Arm(absl::Time deadline, absl::AnyInvocable<void()> cancel);

  // True when disarmed before firing; false when the cancel ran. Blocks only
  // while that cancel is running.
  bool Disarm(uint64_t id);

  // Runs `id`'s cancel now (on the watchdog's thread), as if its deadline
  // had passed; nothing if it already ran or was disarmed. Never blocks.
  void Expedite(uint64_t id);

 private:
  void Loop();

  struct Entry {
    absl::Time deadline;
    absl::AnyInvocable<void()> cancel;
  };
  Mutex mu_;
  CondVar changed_;
  std::map<uint64_t, Entry> armed_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t firing_ ABSL_GUARDED_BY(mu_) = 0;  // id whose cancel runs
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // When the loop wakes next; InfinitePast while it is awake.
  absl::Time wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace rowgate::storage

#endif  // ROWGATE_STORAGE_DEADLINE_WATCHDOG_H_
