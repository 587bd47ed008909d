// tests/engine/test_open_loop_linux.cpp -- backend selection on Linux: open_loop by name,
// the automatic probe ladder (io_uring -> libaio -> epoll) with rungs disabled by the
// environment or blocked by seccomp as container runtimes do, and the clear errors for a
// backend this OS does not have. Part of engine_tests only (engine_tests_kqueue links the
// same open_loop but runs the suite on kqueue; Windows' selection is in
// tests/win32/test_iocp_specific.cpp).
#include <doctest/doctest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/loop.h"
#include "platform/linux/backends.h"

using namespace pp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

/// Whether `kinds` lists `k`.
bool has(const std::vector<BackendKind>& kinds, BackendKind k) {
  return std::find(kinds.begin(), kinds.end(), k) != kinds.end();
}

}  // namespace

TEST_CASE("open_loop: epoll by name, every available backend opens") {
  auto r = open_loop(BackendKind::epoll);
  REQUIRE_MESSAGE(r.loop, r.error);
  CHECK(r.loop->backend_name() == "epoll");
  CHECK(r.reason.find("epoll") != std::string::npos);
  auto kinds = available_backends();
  CHECK(has(kinds, BackendKind::epoll));
  CHECK_FALSE(has(kinds, BackendKind::automatic));
  for (auto k : kinds) {
    INFO("backend: " << to_string(k));
    auto o = open_loop(k);
    REQUIRE_MESSAGE(o.loop, o.error);
    CHECK(o.loop->backend_name() == to_string(k));
  }
}

TEST_CASE("open_loop: iocp and kqueue forced on Linux name the alternatives") {
  for (auto k : {BackendKind::iocp, BackendKind::kqueue}) {
    INFO("backend: " << to_string(k));
    auto r = open_loop(k);
    CHECK_FALSE(r.loop);
    CHECK(r.error.find(std::string(to_string(k))) != std::string::npos);
    CHECK(r.error.find("io_uring") != std::string::npos);
    CHECK(r.error.find("libaio") != std::string::npos);
    CHECK(r.error.find("epoll") != std::string::npos);
  }
}

TEST_CASE("open_loop: automatic ladder io_uring -> libaio -> epoll, rungs disabled by env") {
  {
    ::setenv("PYPARALLEL_DISABLE_IO_URING", "1", 1);
    auto r = open_loop(BackendKind::automatic);
    ::unsetenv("PYPARALLEL_DISABLE_IO_URING");
    REQUIRE_MESSAGE(r.loop, r.error);
    INFO("reason: " << r.reason);
    // libaio where this host has it (and the ladder has it), else epoll; never io_uring.
    bool libaio_next = platform::kLibaioInAutomaticLadder && open_loop(BackendKind::libaio).loop;
    CHECK(r.loop->backend_name() == (libaio_next ? "libaio" : "epoll"));
    CHECK(r.reason.rfind("backend " + std::string(r.loop->backend_name()) + ":", 0) == 0);
    CHECK(r.reason.find("io_uring unavailable (disabled by PYPARALLEL_DISABLE_IO_URING)") !=
          std::string::npos);
  }
  {
    ::setenv("PYPARALLEL_DISABLE_IO_URING", "1", 1);
    ::setenv("PYPARALLEL_DISABLE_LIBAIO", "1", 1);
    auto r = open_loop(BackendKind::automatic);
    auto forced = open_loop(BackendKind::libaio);
    ::unsetenv("PYPARALLEL_DISABLE_LIBAIO");
    ::unsetenv("PYPARALLEL_DISABLE_IO_URING");
    REQUIRE_MESSAGE(r.loop, r.error);
    INFO("reason: " << r.reason);
    CHECK(r.loop->backend_name() == "epoll");
    CHECK(r.reason.find("io_uring unavailable (disabled by PYPARALLEL_DISABLE_IO_URING)") !=
          std::string::npos);
    // The reason names libaio while it is on the automatic ladder.
    if (platform::kLibaioInAutomaticLadder)
      CHECK(r.reason.find("libaio unavailable (disabled by PYPARALLEL_DISABLE_LIBAIO)") !=
            std::string::npos);
    // Forcing a disabled libaio is a clear error that names the way out.
    CHECK_FALSE(forced.loop);
    CHECK(forced.error.find("disabled by PYPARALLEL_DISABLE_LIBAIO") != std::string::npos);
    CHECK(forced.error.find("epoll") != std::string::npos);
  }
}

#if defined(__NR_io_uring_setup) && defined(__NR_io_setup)
namespace {

/// Forks a child that installs a seccomp filter answering each of `blocked` with EPERM,
/// then opens `automatic` and a forced io_uring loop. Returns what the child reports:
/// "<backend>|<reason or error>|<forced io_uring's error, or 'opened'>", or "SKIP ..." where
/// seccomp filters are not allowed.
std::string automatic_under_seccomp(std::vector<int> blocked) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::vector<sock_filter> filter;
    filter.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    for (int nr : blocked) {
      filter.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1));
      filter.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
    }
    filter.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
    std::string out;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      out = "SKIP seccomp unavailable";
    } else {
      auto r = open_loop(BackendKind::automatic);
      out = r.loop ? std::string(r.loop->backend_name()) : std::string("null");
      out += '|';
      out += r.loop ? r.reason : r.error;
      auto forced = open_loop(BackendKind::io_uring);
      out += '|';
      out += forced.loop ? std::string("opened") : forced.error;
    }
    ssize_t w = ::write(fds[1], out.data(), out.size());
    ::_exit(w < 0 ? 1 : 0);
  }
  ::close(fds[1]);
  std::string got;
  pollfd pfd{fds[0], POLLIN, 0};
  auto deadline = Clock::now() + 10s;
  for (;;) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buf[1024];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return got;
}

/// Splits the child's report at its first two '|'.
std::vector<std::string> report_fields(const std::string& got) {
  std::vector<std::string> f;
  auto a = got.find('|');
  auto b = a == std::string::npos ? a : got.find('|', a + 1);
  f.push_back(got.substr(0, a));
  f.push_back(a == std::string::npos ? ""
                                     : got.substr(a + 1, b == std::string::npos ? b : b - a - 1));
  f.push_back(b == std::string::npos ? "" : got.substr(b + 1));
  return f;
}

}  // namespace

// What container runtimes do to io_uring: a seccomp filter that answers io_uring_setup with
// EPERM. The ladder must fall back to libaio (where AIO is allowed) and say why; with
// io_setup blocked too, to epoll, naming both. Runs in forked children, since a seccomp
// filter cannot be removed.
TEST_CASE("open_loop: automatic falls back to libaio, then epoll, when seccomp blocks them") {
  {
    std::string got = automatic_under_seccomp({__NR_io_uring_setup});
    INFO("child said: " << got);
    if (got.rfind("SKIP", 0) == 0) {
      MESSAGE("seccomp filters are not allowed here; skipped");
      return;
    }
    auto f = report_fields(got);
    // libaio is the next rung where the host has AIO poll; epoll otherwise.
    bool libaio_next = platform::kLibaioInAutomaticLadder && open_loop(BackendKind::libaio).loop;
    CHECK(f[0] == (libaio_next ? "libaio" : "epoll"));
    CHECK(f[1].rfind("backend " + f[0] + ": io_uring unavailable (", 0) == 0);
    CHECK(f[1].find("io_uring_setup") != std::string::npos);
    // Forcing io_uring where it is blocked is a clear error that names the ways out.
    CHECK(f[2] != "opened");
    CHECK(f[2].find("epoll") != std::string::npos);
    CHECK(f[2].find("libaio") != std::string::npos);
  }
  {
    std::string got = automatic_under_seccomp({__NR_io_uring_setup, __NR_io_setup});
    INFO("child said: " << got);
    auto f = report_fields(got);
    CHECK(f[0] == "epoll");
    CHECK(f[1].rfind("backend epoll: io_uring unavailable (", 0) == 0);
    CHECK(f[1].find("io_uring_setup") != std::string::npos);
    if (platform::kLibaioInAutomaticLadder)
      CHECK(f[1].find("libaio unavailable (io_setup: Operation not permitted") !=
            std::string::npos);
    CHECK(f[2] != "opened");
  }
}
#endif
