// tests/win32/test_iocp_specific.cpp -- what only the Windows build has: backend selection
// (iocp is the only backend) and the listener shared by several loops (platform/win32/net.cpp,
// accept_port.h), which stands in for SO_REUSEPORT. The engine suite every backend runs,
// IOCP included, is tests/engine/test_loop.cpp; both link into engine_tests_iocp.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/engine/loopback.h"

using namespace pp;
using namespace pp::test;
using namespace std::chrono_literals;

TEST_CASE("open_loop on Windows: auto and iocp open iocp; the others are refused by name") {
  auto a = open_loop(BackendKind::automatic);
  REQUIRE_MESSAGE(a.loop, a.error);
  CHECK(a.loop->backend_name() == "iocp");
  CHECK(a.reason.find("iocp") != std::string::npos);
  auto i = open_loop(BackendKind::iocp);
  REQUIRE_MESSAGE(i.loop, i.error);
  CHECK(i.reason == "backend iocp: requested");
  for (BackendKind k :
       {BackendKind::io_uring, BackendKind::libaio, BackendKind::epoll, BackendKind::kqueue}) {
    auto r = open_loop(k);
    CHECK_FALSE(r.loop);
    CHECK(r.error.find("does not exist on Windows") != std::string::npos);
    CHECK(r.error.find("use iocp or auto") != std::string::npos);
  }
  CHECK(available_backends() == std::vector<BackendKind>{BackendKind::iocp});
}

TEST_CASE("a listener shared by two loops: both accept from one port, each on its own thread") {
  std::string err;
  Handle first = listen_tcp("127.0.0.1", 0, /*reuse_port=*/true, 128, err);
  REQUIRE_MESSAGE(first != invalid_handle, err);
  std::uint16_t port = local_port(first);
  Handle second = listen_tcp("127.0.0.1", port, /*reuse_port=*/true, 128, err);
  REQUIRE_MESSAGE(second != invalid_handle, err);
  CHECK(second != first);             // a second handle...
  CHECK(local_port(second) == port);  // ...on the same socket

  // Without reuse_port the port is taken (SO_EXCLUSIVEADDRUSE).
  Handle third = listen_tcp("127.0.0.1", port, /*reuse_port=*/false, 128, err);
  CHECK(third == invalid_handle);

  struct Worker {
    std::unique_ptr<Loop> loop;
    Probe acc;
    std::thread::id ran_on;
    std::atomic<bool> stop{false};
    std::atomic<int> accepted{0};
  };
  Worker w[2];
  Handle listeners[2] = {first, second};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto opened = open_loop(BackendKind::iocp);
      if (!opened.loop) return;
      w[i].loop = std::move(opened.loop);
      w[i].acc.op.prep_accept(listeners[i], true, Probe::on_complete, &w[i].acc);
      w[i].loop->submit(w[i].acc.op);
      while (!w[i].stop) {
        w[i].loop->run_once(5ms);
        w[i].accepted = static_cast<int>(w[i].acc.results.size());
      }
      Probe c;
      c.op.prep_cancel(&w[i].acc.op, Probe::on_complete, &c);
      w[i].loop->submit(c.op);
      run_until(
          *w[i].loop, [&] { return c.done() && w[i].acc.done(); }, 5s);
      for (std::size_t k = 0; k < w[i].acc.results.size(); ++k)
        if (w[i].acc.results[k] >= 0 && w[i].acc.mores[k])
          close_fd(static_cast<int>(w[i].acc.results[k]));
    });
  }
  std::this_thread::sleep_for(100ms);  // both accepts posted
  std::vector<Fd> clients;
  for (int n = 0; n < 40; ++n) {
    clients.push_back(connect_client(port));
    std::this_thread::sleep_for(2ms);
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (w[0].accepted + w[1].accepted < 40 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  int a0 = w[0].accepted, a1 = w[1].accepted;
  w[0].stop = w[1].stop = true;
  for (auto& t : threads) t.join();
  INFO("loop 0 accepted " << a0 << ", loop 1 accepted " << a1);
  CHECK(a0 + a1 == 40);
  // Both loops got connections: the kernel hands each to an accept that is waiting.
  CHECK(a0 > 0);
  CHECK(a1 > 0);
  close_socket(second);
  close_socket(first);
}
