// Network faults for the fault tests, on loopback only: a listener that
// accepts TCP connections and never answers (a database host gone silent),
// and a TCP proxy to PostgreSQL's unix socket that can be told to go silent
// mid-conversation.
//
// Each runs one thread of its own; start, query and stop from one test
// thread. The destructor closes every socket and joins the thread.
//
// Example:
//   PostgresProxy proxy(UnixSocketOf(TestDatabaseUrl()));
//   ... rowgate --database_url=proxy.Url(db) ...
//   proxy.GoSilent();  // bytes stop flowing both ways; sockets stay open
#ifndef ROWGATE_TESTS_FAULTS_FAULT_NET_H_
#define ROWGATE_TESTS_FAULTS_FAULT_NET_H_

#include <atomic>
#include <string>
#include <thread>

namespace rowgate::faults {

// The unix socket path of a libpq URL whose host is a socket directory
// (as `make test`'s is), e.g. /tmp/rowgate-pg-1234/.s.PGSQL.5432.
std::string UnixSocketOf(const std::string& url);

// postgresql://<user>@127.0.0.1:<port>/<dbname of url>.
std::string TcpUrl(int port, const std::string& url);

// Accepts connections on 127.0.0.1 and holds them open, reading nothing and
// writing nothing.
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }
  // Connections accepted so far.
  int accepted() const { return accepted_.load(); }

 private:
  void Run();
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Forwards TCP connections on 127.0.0.1 to a unix socket until GoSilent();
// from then on it forwards nothing (in either direction) and accepts new
// connections without connecting them anywhere.
class PostgresProxy {
 public:
  explicit PostgresProxy(std::string unix_socket);
  ~PostgresProxy();
  PostgresProxy(const PostgresProxy&) = delete;
  PostgresProxy& operator=(const PostgresProxy&) = delete;
  int port() const { return port_; }
  // Never blocks.
  void GoSilent() { silent_.store(true); }
  // From now on, what clients send on the connections already open is held
  // here, in order, and not forwarded until ReleaseHeldBytes(); the server's
  // bytes, and every connection opened later (e.g. a cancel request), flow
  // as usual. A statement sent meanwhile reaches PostgreSQL late. Never
  // blocks.
  void HoldClientBytes() { hold_epoch_.fetch_add(1); }
  // Forwards what was held and stops holding. Never blocks.
  void ReleaseHeldBytes() { release_epoch_.store(hold_epoch_.load()); }
  // Bytes held now, not yet forwarded.
  size_t held_bytes() const { return held_bytes_.load(); }
  // Connections accepted while silent (each a connect attempt that will
  // never be answered).
  int accepted_while_silent() const { return accepted_while_silent_.load(); }

 private:
  void Run();
  const std::string unix_socket_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> silent_{false};
  std::atomic<int> accepted_while_silent_{0};
  // HoldClientBytes() and ReleaseHeldBytes() calls: holding while they
  // differ, for connections opened before the latest hold.
  std::atomic<int> hold_epoch_{0};
  std::atomic<int> release_epoch_{0};
  std::atomic<size_t> held_bytes_{0};
  std::thread thread_;
};

}  // namespace rowgate::faults

#endif  // ROWGATE_TESTS_FAULTS_FAULT_NET_H_
