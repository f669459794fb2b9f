#include "tests/e2e/rowgate_process.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/common/test_database.h"

namespace rowgate::e2e {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(30);
constexpr absl::Duration kStopTimeout = absl::Seconds(10);
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// The port in the port file, or 0 while it is absent or not fully written.
int ReadPort(const std::string& path) {
  std::string text = ReadFile(path);
  int port = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) || port <= 0 ||
      port > 65535) {
    return 0;
  }
  // The server may write the file in more than one step: trust it only
  // when it reads the same twice.
  absl::SleepFor(kPollInterval);
  return ReadFile(path) == text ? port : 0;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("wait status ", status);
}

}  // namespace

std::unique_ptr<RowgateProcess> RowgateProcess::Start(
    std::vector<std::string> extra_flags) {
  // The flags as the failure message shows them (without the URL).
  const std::vector<std::string> extra_flags_copy = extra_flags;
  std::unique_ptr<RowgateProcess> process = Spawn(std::move(extra_flags));
  if (process == nullptr) return nullptr;
  const std::string port_file = process->temp_dir_ + "/port";
  const absl::Time deadline = absl::Now() + kStartTimeout;
  while (process->port_ == 0) {
    if (process->Reaped()) {
      ADD_FAILURE() << "rowgate exited before serving ("
                    << DescribeWaitStatus(process->exit_->wait_status)
                    << "); flags: " << absl::StrJoin(extra_flags_copy, " ")
                    << "\nits output:\n"
                    << process->OutputTail();
      return nullptr;
    }
    if (absl::Now() > deadline) {
      ADD_FAILURE() << "rowgate wrote no port file within " << kStartTimeout
                    << "; its output:\n"
                    << process->OutputTail();
      return nullptr;  // The destructor stops it.
    }
    process->port_ = ReadPort(port_file);
    if (process->port_ == 0) absl::SleepFor(kPollInterval);
  }
  if (!process->NewChannel()->WaitForConnected(absl::ToChronoTime(deadline))) {
    ADD_FAILURE() << "rowgate wrote port " << process->port_
                  << " but does not accept connections there; its output:\n"
                  << process->OutputTail();
    return nullptr;
  }
  return process;
}

std::unique_ptr<RowgateProcess> RowgateProcess::Spawn(
    std::vector<std::string> extra_flags) {
  const char* binary = std::getenv("ROWGATE_BINARY");
  if (binary == nullptr || *binary == '\0') {
    ADD_FAILURE() << "ROWGATE_BINARY is not set: run the tests with ctest "
                     "(`make test`), which points it at the rowgate binary";
    return nullptr;
  }
  const std::string url = rowgate::testing::TestDatabaseUrl();
  if (url.empty()) return nullptr;

  char dir_template[] = "/tmp/rowgate_e2e_XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return nullptr;
  }
  const std::string temp_dir = dir_template;
  const std::string port_file = temp_dir + "/port";
  const std::string output_file = temp_dir + "/output";

  std::vector<std::string> args = {binary, "--listen=127.0.0.1:0",
                                   "--port_file=" + port_file,
                                   "--database_url=" + url};
  // ROWGATE_TEST_EXTRA_FLAGS (space-separated) runs a whole suite against
  // another configuration, e.g. BatchGet on the callback API (ctest
  // e2e_callback_api); a test's own flags come after, and win.
  if (const char* more = std::getenv("ROWGATE_TEST_EXTRA_FLAGS")) {
    for (absl::string_view flag :
         absl::StrSplit(more, ' ', absl::SkipEmpty())) {
      args.emplace_back(flag);
    }
  }
  for (std::string& flag : extra_flags) args.push_back(std::move(flag));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // The server reads ROWGATE_<FLAG> and DATABASE_URL from its environment:
  // leave them out so that only the flags above configure it.
  std::vector<char*> envp;
  for (char** var = environ; *var != nullptr; ++var) {
    const absl::string_view entry = *var;
    if (absl::StartsWith(entry, "ROWGATE_") ||
        absl::StartsWith(entry, "DATABASE_URL=")) {
      continue;
    }
    envp.push_back(*var);
  }
  envp.push_back(nullptr);

  const int output_fd =
      open(output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (output_fd < 0 || null_fd < 0) {
    ADD_FAILURE() << "cannot open " << output_file << " or /dev/null";
    return nullptr;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the test process
    // has gRPC's threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(null_fd, STDIN_FILENO);
    dup2(output_fd, STDOUT_FILENO);
    dup2(output_fd, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(output_fd);
  close(null_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<RowgateProcess>(new RowgateProcess(pid, temp_dir));
}

RowgateProcess::RowgateProcess(pid_t pid, std::string temp_dir)
    : pid_(pid), temp_dir_(std::move(temp_dir)) {}

RowgateProcess::~RowgateProcess() {
  Stop();
  unlink((temp_dir_ + "/port").c_str());
  unlink((temp_dir_ + "/port.tmp").c_str());
  unlink((temp_dir_ + "/output").c_str());
  rmdir(temp_dir_.c_str());
}

std::string RowgateProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::shared_ptr<grpc::Channel> RowgateProcess::NewChannel() const {
  return grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
}

std::string RowgateProcess::OutputTail(size_t max_bytes) const {
  std::string output = ReadFile(temp_dir_ + "/output");
  if (output.size() > max_bytes) {
    output = "[...]" + output.substr(output.size() - max_bytes);
  }
  return output;
}

bool RowgateProcess::Reaped() {
  if (exit_.has_value()) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_ = ExitInfo{false, status};
    return true;
  }
  return false;
}

void RowgateProcess::Signal(int signal) {
  if (exit_.has_value()) return;
  if (signal == SIGTERM || signal == SIGINT) asked_to_exit_ = true;
  kill(pid_, signal);
}

std::optional<RowgateProcess::ExitInfo> RowgateProcess::WaitForExit(
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!Reaped() && absl::Now() < deadline) absl::SleepFor(kPollInterval);
  return exit_;
}

RowgateProcess::ExitInfo RowgateProcess::Kill() {
  if (exit_.has_value()) return *exit_;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  exit_ = ExitInfo{false, status};
  return *exit_;
}

RowgateProcess::ExitInfo RowgateProcess::Stop() {
  if (exit_.has_value()) return *exit_;
  if (Reaped()) {
    // After Signal(SIGTERM) the child may well have exited on its own by
    // now: that is the shutdown the caller asked for, not a death.
    if (!asked_to_exit_) {
      ADD_FAILURE() << "rowgate (port " << port_ << ") died during the test ("
                    << DescribeWaitStatus(exit_->wait_status)
                    << "); its output:\n"
                    << OutputTail();
      return *exit_;
    }
  } else {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + kStopTimeout;
    while (!Reaped() && absl::Now() < deadline) absl::SleepFor(kPollInterval);
    if (!exit_.has_value()) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      exit_ = ExitInfo{true, status};
      ADD_FAILURE() << "rowgate (port " << port_ << ") did not exit within "
                    << kStopTimeout << " of SIGTERM; its output:\n"
                    << OutputTail();
      return *exit_;
    }
  }
  if (WIFSIGNALED(exit_->wait_status) &&
      WTERMSIG(exit_->wait_status) != SIGTERM) {
    ADD_FAILURE() << "rowgate (port " << port_ << ") crashed on SIGTERM ("
                  << DescribeWaitStatus(exit_->wait_status)
                  << "); its output:\n"
                  << OutputTail();
  }
  return *exit_;
}

}  // namespace rowgate::e2e
