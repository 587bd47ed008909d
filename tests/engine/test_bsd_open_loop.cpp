// tests/engine/test_bsd_open_loop.cpp -- platform/bsd/open_loop.cpp (the BSD/macOS ladder:
// kqueue alone) compiled and run on Linux over the test-only kqueue emulation. Its own
// binary (bsd_open_loop_tests): it defines pp::open_loop/available_backends, which keeps the
// linker from taking Linux's from the ppcore archive.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "core/loop.h"

using namespace pp;
using namespace std::chrono_literals;

TEST_CASE("BSD open_loop: kqueue is the only backend, by name and automatically") {
  auto kinds = available_backends();
  REQUIRE(kinds.size() == 1);
  CHECK(kinds[0] == BackendKind::kqueue);
  for (auto kind : {BackendKind::automatic, BackendKind::kqueue}) {
    INFO("asked for: " << to_string(kind));
    auto r = open_loop(kind);
    REQUIRE_MESSAGE(r.loop, r.error);
    CHECK(r.loop->backend_name() == "kqueue");
    CHECK(r.reason.find("kqueue") != std::string::npos);
  }
}

TEST_CASE("BSD open_loop: the other systems' backends name the alternatives") {
  // Every name core/loop.h knows, whatever this build's list: those not on BSD must fail.
  for (const char* name : {"io_uring", "libaio", "epoll", "iocp"}) {
    BackendKind kind;
    if (!parse_backend_kind(name, kind)) continue;
    INFO("backend: " << name);
    auto r = open_loop(kind);
    CHECK_FALSE(r.loop);
    CHECK(r.error.find(name) != std::string::npos);
    CHECK(r.error.find("kqueue") != std::string::npos);
    CHECK(r.error.find("auto") != std::string::npos);
  }
}

TEST_CASE("BSD open_loop: the loop it opens runs a timer and wakes for a post") {
  auto r = open_loop(BackendKind::automatic);
  REQUIRE_MESSAGE(r.loop, r.error);
  Loop& loop = *r.loop;
  bool fired = false;
  Operation t;
  t.prep_timeout(
      2ms,
      [](Operation& op, const Completion& c) {
        if (c.result == 0) *static_cast<bool*>(op.user) = true;
      },
      &fired);
  loop.submit(t);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!fired && std::chrono::steady_clock::now() < deadline) loop.run_once(100ms);
  CHECK(fired);
  std::atomic<bool> ran{false};
  std::thread poster([&] {
    std::this_thread::sleep_for(20ms);
    loop.post([&] { ran = true; });
  });
  auto t0 = std::chrono::steady_clock::now();
  while (!ran && std::chrono::steady_clock::now() < deadline) loop.run_once(-1ns);
  poster.join();
  CHECK(ran);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
}
