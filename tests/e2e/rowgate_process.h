// Runs the real `rowgate` server binary as a child process for the
// end-to-end tests, against the test database.
//
// The binary is $ROWGATE_BINARY (set by ctest), the database
// $ROWGATE_TEST_DATABASE_URL. Start() blocks until the server has written its
// port file (it does so once serving) and a channel to it connects, or fails
// the calling test and returns null. The destructor stops the server (SIGTERM,
// SIGKILL after 10 s) and fails the current test if the server had died on
// its own or would not stop. Not thread-safe: one owner, usually a fixture.
// The child gets SIGKILL when the thread that started it exits (so that a
// crashed test binary leaves no server behind): start it from the test's
// main thread.
//
// Example:
//   std::unique_ptr<RowgateProcess> server =
//       RowgateProcess::Start({"--pool_size=1"});
//   ASSERT_NE(server, nullptr);
//   auto stub = rowgate::v1::DataService::NewStub(server->NewChannel());
#ifndef ROWGATE_TESTS_E2E_ROWGATE_PROCESS_H_
#define ROWGATE_TESTS_E2E_ROWGATE_PROCESS_H_

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace rowgate::e2e {

class RowgateProcess {
 public:
  // How the child ended.
  struct ExitInfo {
    // SIGTERM was not enough within 10 s.
    bool needed_sigkill = false;
    // As waitpid() reports it.
    int wait_status = 0;
  };

  // Starts rowgate with `--listen=127.0.0.1:0 --port_file=... --database_url=`
  // plus `extra_flags`, and waits (blocks, up to 30 s) until it serves.
  // Returns null after failing the current test when it does not.
  static std::unique_ptr<RowgateProcess> Start(
      std::vector<std::string> extra_flags = {});
  // Like Start, but returns as soon as the child runs, without waiting for
  // it to serve (for a server expected to fail at start). A later
  // --database_url in `extra_flags` wins over the test database's.
  static std::unique_ptr<RowgateProcess> Spawn(
      std::vector<std::string> extra_flags = {});

  RowgateProcess(const RowgateProcess&) = delete;
  RowgateProcess& operator=(const RowgateProcess&) = delete;
  // Stop(); blocks up to ~10 s.
  ~RowgateProcess();

  // "127.0.0.1:<port>".
  std::string address() const;
  // The child's process id (e.g. to read /proc/<pid>).
  pid_t pid() const { return pid_; }
  // A new insecure channel to the server.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  // The last `max_bytes` of what the server wrote to stdout and stderr.
  std::string OutputTail(size_t max_bytes = 4000) const;

  // Sends `signal` (e.g. SIGTERM) without waiting; Stop() then reaps (a
  // child that exited after SIGTERM or SIGINT is not reported as died).
  void Signal(int signal);

  // Waits (blocks) up to `timeout` for the child to exit on its own (or
  // after Signal); nullopt if it is still running then.
  std::optional<ExitInfo> WaitForExit(absl::Duration timeout);

  // Sends SIGKILL and reaps the child (blocks until it is gone): a crash
  // with no shutdown at all. Later Stop() and Kill() return this result.
  ExitInfo Kill();

  // Sends SIGTERM and waits (blocks) up to 10 s, then sends SIGKILL. Fails
  // the current test if the server had already exited or needed SIGKILL.
  // Idempotent: later calls return the first result.
  ExitInfo Stop();

 private:
  RowgateProcess(pid_t pid, std::string temp_dir);
  // Non-blocking: true once the child has exited (its status in exit_).
  bool Reaped();

  const pid_t pid_;
  const std::string temp_dir_;
  int port_ = 0;
  std::optional<ExitInfo> exit_;
  // Signal() sent SIGTERM or SIGINT: exiting before Stop() is expected.
  bool asked_to_exit_ = false;
};

}  // namespace rowgate::e2e

#endif  // ROWGATE_TESTS_E2E_ROWGATE_PROCESS_H_
