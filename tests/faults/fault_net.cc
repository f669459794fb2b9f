#include "tests/faults/fault_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rowgate::faults {
namespace {

// libpq's reading of `url`: keyword -> value for the keywords it sets.
std::map<std::string, std::string> Parse(const std::string& url) {
  std::map<std::string, std::string> out;
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(url.c_str(), &error), &PQconninfoFree);
  PQfreemem(error);
  if (options == nullptr) return out;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val != nullptr) out[o->keyword] = o->val;
  }
  return out;
}

// A listening socket on 127.0.0.1 and an ephemeral port; -1 on failure
// (after failing the test).
int ListenOnLoopback(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ||
      listen(fd, 128) ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len)) {
    ADD_FAILURE() << "cannot listen on 127.0.0.1: " << std::strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

std::string UnixSocketOf(const std::string& url) {
  auto options = Parse(url);
  const std::string port = options.count("port") ? options["port"] : "5432";
  return absl::StrCat(options["host"], "/.s.PGSQL.", port);
}

std::string TcpUrl(int port, const std::string& url) {
  auto options = Parse(url);
  const std::string user =
      options.count("user") ? options["user"] : std::string("postgres");
  return absl::StrCat("postgresql://", user, "@127.0.0.1:", port, "/",
                      options["dbname"]);
}

SilentListener::SilentListener() {
  listen_fd_ = ListenOnLoopback(&port_);
  if (pipe2(wake_, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2";
  thread_ = std::thread([this] { Run(); });
}

SilentListener::~SilentListener() {
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void SilentListener::Run() {
  std::vector<int> held;
  while (listen_fd_ >= 0) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;
    if (fds[0].revents & POLLIN) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        held.push_back(fd);
        ++accepted_;
      }
    }
  }
  for (int fd : held) close(fd);
}

PostgresProxy::PostgresProxy(std::string unix_socket)
    : unix_socket_(std::move(unix_socket)) {
  listen_fd_ = ListenOnLoopback(&port_);
  if (pipe2(wake_, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2";
  thread_ = std::thread([this] { Run(); });
}

PostgresProxy::~PostgresProxy() {
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void PostgresProxy::Run() {
  // Pairs of (client, server) sockets; server -1 for a connection accepted
  // while silent. Closed when either side closes (while forwarding).
  std::vector<std::pair<int, int>> pairs;
  // Per client socket: the hold epoch it was opened in, and what it sent
  // while held (HoldClientBytes).
  std::map<int, int> opened_in;
  std::map<int, std::string> held_bytes;
  std::vector<int> held;
  char buffer[65536];
  while (listen_fd_ >= 0) {
    const bool silent = silent_.load();
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    // Only these pairs have entries in `fds`; one accepted below joins the
    // next round (indexing fds for it read past the end: ASan).
    const size_t polled = silent ? 0 : pairs.size();
    if (!silent) {
      for (const auto& [client, server] : pairs) {
        fds.push_back({client, POLLIN, 0});
        fds.push_back({server, POLLIN, 0});
      }
    }
    // Silence is checked at least every 20 ms.
    if (poll(fds.data(), fds.size(), 20) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) {
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0 && silent_.load()) {
        held.push_back(client);
        ++accepted_while_silent_;
      } else if (client >= 0) {
        const int server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, unix_socket_.c_str(),
                     sizeof(addr.sun_path) - 1);
        if (server >= 0 && connect(server, reinterpret_cast<sockaddr*>(&addr),
                                   sizeof(addr)) == 0) {
          pairs.emplace_back(client, server);
          opened_in[client] = hold_epoch_.load();
        } else {
          if (server >= 0) close(server);
          close(client);
        }
      }
    }
    if (silent || silent_.load()) continue;
    const int hold = hold_epoch_.load();
    const bool holding = hold != release_epoch_.load();
    // Whether the client's bytes are held now: it was open before the hold.
    auto is_held = [&](int client) {
      return holding && opened_in[client] < hold;
    };
    auto write_all = [](int to, const char* data, size_t n) {
      for (size_t done = 0; done < n;) {
        const ssize_t w = write(to, data + done, n - done);
        if (w <= 0) return false;
        done += static_cast<size_t>(w);
      }
      return true;
    };
    std::vector<std::pair<int, int>> open;
    for (size_t i = 0; i < pairs.size(); ++i) {
      if (i >= polled) {
        open.push_back(pairs[i]);
        continue;
      }
      bool closed = false;
      if (auto it = held_bytes.find(pairs[i].first);
          it != held_bytes.end() && !is_held(pairs[i].first)) {
        closed =
            !write_all(pairs[i].second, it->second.data(), it->second.size());
        held_bytes_.fetch_sub(it->second.size());
        held_bytes.erase(it);
      }
      for (int side = 0; side < 2 && !closed; ++side) {
        const pollfd& p = fds[2 + 2 * i + side];
        if (p.revents == 0) continue;
        const int from = side == 0 ? pairs[i].first : pairs[i].second;
        const int to = side == 0 ? pairs[i].second : pairs[i].first;
        const ssize_t n = read(from, buffer, sizeof(buffer));
        if (n <= 0) {
          closed = true;
          break;
        }
        if (side == 0 && is_held(from)) {
          held_bytes[from].append(buffer, static_cast<size_t>(n));
          held_bytes_.fetch_add(static_cast<size_t>(n));
          continue;
        }
        closed = !write_all(to, buffer, static_cast<size_t>(n));
      }
      if (closed) {
        if (auto it = held_bytes.find(pairs[i].first); it != held_bytes.end()) {
          held_bytes_.fetch_sub(it->second.size());
          held_bytes.erase(it);
        }
        opened_in.erase(pairs[i].first);
        close(pairs[i].first);
        close(pairs[i].second);
      } else {
        open.push_back(pairs[i]);
      }
    }
    pairs = std::move(open);
  }
  for (const auto& [client, server] : pairs) {
    close(client);
    close(server);
  }
  for (int fd : held) close(fd);
}

}  // namespace rowgate::faults
