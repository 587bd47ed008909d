// tests/engine/test_kqueue_emulation.cpp -- the test-only kqueue emulation checked against
// the BSD semantics the kqueue backend relies on, so that a pass of the engine suite in
// engine_tests_kqueue means the backend works, not that two bugs cancelled out: EV_RECEIPT
// and EV_ERROR results, EV_ADD re-evaluating readiness, EV_CLEAR edges, one fd's read and
// write events split without losing one to a short event list, EV_EOF, EVFILT_USER from
// another thread, EV_ONESHOT, EV_DISABLE, timeouts, and fds closed behind its back. Built
// only into engine_tests_kqueue (with PP_TEST_KQUEUE_EMULATION).
#include <doctest/doctest.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>

#include "tests/engine/loopback.h"

using pp::test::Fd;
using namespace std::chrono_literals;

namespace {

struct Kq {
  Fd fd{::kqueue()};
  Kq() { REQUIRE(fd.get() >= 0); }

  /// Applies one change; returns its EV_ERROR entry's data (EV_RECEIPT forces the entry).
  std::int64_t change(int ident, short filter, unsigned short flags, unsigned fflags = 0,
                      void* udata = nullptr) {
    struct kevent ch, out;
    EV_SET(&ch, static_cast<uintptr_t>(ident), filter, flags | EV_RECEIPT, fflags, 0, udata);
    int n = ::kevent(fd.get(), &ch, 1, &out, 1, nullptr);
    REQUIRE(n == 1);
    REQUIRE((out.flags & EV_ERROR) != 0);
    CHECK(out.ident == static_cast<uintptr_t>(ident));
    CHECK(out.filter == filter);
    return out.data;
  }

  /// Up to `max` events (at most 8), waiting at most `wait`.
  int poll(struct kevent* out, int max, std::chrono::nanoseconds wait = 0ns) {
    timespec ts{static_cast<time_t>(wait.count() / 1'000'000'000),
                static_cast<long>(wait.count() % 1'000'000'000)};
    return ::kevent(fd.get(), nullptr, 0, out, max, &ts);
  }
};

struct Pair {
  Fd a, b;
  Pair() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    a = Fd(sv[0]);
    b = Fd(sv[1]);
  }
};

void drain(int fd) {
  char buf[4096];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

}  // namespace

TEST_CASE("kqueue emulation: EV_RECEIPT and EV_ERROR results") {
  Kq kq;
  Pair p;
  // EV_RECEIPT: an entry for every change, data 0 on success.
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR) == 0);
  // A closed fd is EBADF, a knote that does not exist ENOENT, an unknown filter EINVAL.
  int closed = ::dup(p.b.get());
  ::close(closed);
  CHECK(kq.change(closed, EVFILT_READ, EV_ADD) == EBADF);
  CHECK(kq.change(p.b.get(), EVFILT_WRITE, EV_DELETE) == ENOENT);
  CHECK(kq.change(p.b.get(), -7 /* EVFILT_TIMER */, EV_ADD) == EINVAL);
  // Without EV_RECEIPT: a failure takes an entry when there is room and ends the call
  // before any event is dequeued; with no room it is the call's errno.
  struct kevent ch[2], out[2];
  EV_SET(&ch[0], static_cast<uintptr_t>(closed), EVFILT_READ, EV_ADD, 0, 0, nullptr);
  EV_SET(&ch[1], static_cast<uintptr_t>(p.b.get()), EVFILT_READ, EV_ADD, 0, 0, nullptr);
  CHECK(::kevent(kq.fd.get(), ch, 2, out, 2, nullptr) == 1);
  CHECK(out[0].flags == EV_ERROR);
  CHECK(out[0].data == EBADF);
  errno = 0;
  CHECK(::kevent(kq.fd.get(), ch, 1, nullptr, 0, nullptr) == -1);
  CHECK(errno == EBADF);
  // Not a kqueue at all.
  errno = 0;
  CHECK(::kevent(p.a.get(), nullptr, 0, out, 1, nullptr) == -1);
  CHECK(errno == EBADF);
}

TEST_CASE("kqueue emulation: read and write of one fd, split without losing one") {
  Kq kq;
  Pair p;
  int tag_r = 0, tag_w = 0;
  REQUIRE(::write(p.b.get(), "x", 1) == 1);  // a is readable, and writable
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR, 0, &tag_r) == 0);
  CHECK(kq.change(p.a.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, &tag_w) == 0);
  // Room for one event per call: the second must still come (an edge lost under EV_CLEAR
  // would never be reported again).
  struct kevent ev[8];
  REQUIRE(kq.poll(ev, 1) == 1);
  struct kevent first = ev[0];
  REQUIRE(kq.poll(ev, 1) == 1);
  struct kevent second = ev[0];
  CHECK(first.filter != second.filter);
  for (const struct kevent& e : {first, second}) {
    CHECK(e.ident == static_cast<uintptr_t>(p.a.get()));
    CHECK(e.udata == (e.filter == EVFILT_READ ? static_cast<void*>(&tag_r) : &tag_w));
    CHECK((e.flags & EV_CLEAR) != 0);
    CHECK((e.flags & EV_EOF) == 0);
  }
  // EV_CLEAR: delivered edges are not reported again...
  CHECK(kq.poll(ev, 8) == 0);
  // ...until EV_ADD re-evaluates the filter: the byte is still unread. (epoll's MOD
  // re-evaluates the whole registration, so the unchanged write side may come again too;
  // BSD would report the read side alone. README.md lists this.)
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR, 0, &tag_r) == 0);
  int n = kq.poll(ev, 8);
  REQUIRE(n >= 1);
  CHECK(ev[0].filter == EVFILT_READ);
  drain(p.a.get());
  // A new edge: more data. (Linux's EPOLLET reports the fd's whole readiness with every
  // edge, so the write side comes along; BSD would report the read knote alone.)
  REQUIRE(::write(p.b.get(), "y", 1) == 1);
  n = kq.poll(ev, 8, 100ms);
  REQUIRE(n >= 1);
  CHECK(ev[0].filter == EVFILT_READ);
}

TEST_CASE("kqueue emulation: EV_EOF when the peer shuts down or goes away") {
  Kq kq;
  Pair p;
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR) == 0);
  struct kevent ev[8];
  CHECK(kq.poll(ev, 8) == 0);
  ::shutdown(p.b.get(), SHUT_WR);
  REQUIRE(kq.poll(ev, 8, 100ms) == 1);
  CHECK(ev[0].filter == EVFILT_READ);
  CHECK((ev[0].flags & EV_EOF) != 0);
  // The write side too, once the peer is gone.
  CHECK(kq.change(p.a.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR) == 0);
  drain(p.a.get());
  p.b.reset();
  bool write_eof = false;
  for (int tries = 0; tries < 10 && !write_eof; ++tries) {
    int n = kq.poll(ev, 8, 20ms);
    for (int i = 0; i < n; ++i)
      if (ev[i].filter == EVFILT_WRITE && (ev[i].flags & EV_EOF)) write_eof = true;
  }
  CHECK(write_eof);
}

TEST_CASE("kqueue emulation: EVFILT_USER, triggered from another thread") {
  Kq kq;
  int tag = 0;
  CHECK(kq.change(7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, &tag) == 0);
  struct kevent ev[8];
  CHECK(kq.poll(ev, 8) == 0);
  // A wait without limit ends when another thread triggers it.
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    struct kevent trig;
    EV_SET(&trig, 7, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x5, 0, nullptr);
    CHECK(::kevent(kq.fd.get(), &trig, 1, nullptr, 0, nullptr) == 0);
  });
  int n = ::kevent(kq.fd.get(), nullptr, 0, ev, 8, nullptr);
  t.join();
  REQUIRE(n == 1);
  CHECK(ev[0].ident == 7);
  CHECK(ev[0].filter == EVFILT_USER);
  CHECK(ev[0].fflags == 0x5);
  CHECK(ev[0].udata == &tag);
  // EV_CLEAR reset it on delivery; triggers before a delivery coalesce into one.
  CHECK(kq.poll(ev, 8) == 0);
  struct kevent trig;
  EV_SET(&trig, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
  REQUIRE(::kevent(kq.fd.get(), &trig, 1, nullptr, 0, nullptr) == 0);
  REQUIRE(::kevent(kq.fd.get(), &trig, 1, nullptr, 0, nullptr) == 0);
  CHECK(kq.poll(ev, 8) == 1);
  CHECK(kq.poll(ev, 8) == 0);
  // Another ident is another event; triggering one that does not exist is ENOENT.
  CHECK(kq.change(8, EVFILT_USER, 0, NOTE_TRIGGER) == ENOENT);
  CHECK(kq.change(7, EVFILT_USER, EV_DELETE) == 0);
  CHECK(kq.change(7, EVFILT_USER, EV_DELETE) == ENOENT);
}

TEST_CASE("kqueue emulation: EV_ONESHOT, EV_DISABLE/EV_ENABLE, EV_DELETE") {
  Kq kq;
  Pair p;
  struct kevent ev[8];
  // One-shot: one event, then the knote is gone.
  CHECK(kq.change(p.a.get(), EVFILT_WRITE, EV_ADD | EV_ONESHOT) == 0);
  REQUIRE(kq.poll(ev, 8) == 1);
  CHECK(ev[0].filter == EVFILT_WRITE);
  CHECK(kq.poll(ev, 8) == 0);
  CHECK(kq.change(p.a.get(), EVFILT_WRITE, EV_DELETE) == ENOENT);
  // Disabled: nothing reported; enabled again: reported (re-evaluated).
  REQUIRE(::write(p.b.get(), "x", 1) == 1);
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR | EV_DISABLE) == 0);
  CHECK(kq.poll(ev, 8, 10ms) == 0);
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ENABLE) == 0);
  CHECK(kq.poll(ev, 8) == 1);
  // Deleted: nothing more, however much arrives.
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_DELETE) == 0);
  REQUIRE(::write(p.b.get(), "y", 1) == 1);
  CHECK(kq.poll(ev, 8, 10ms) == 0);
  // A mix of EV_CLEAR and level on one fd is not emulated (epoll has one EPOLLET per fd).
  CHECK(kq.change(p.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR) == 0);
  CHECK(kq.change(p.a.get(), EVFILT_WRITE, EV_ADD) == EINVAL);
}

TEST_CASE("kqueue emulation: an fd closed behind its back, its number reused") {
  Kq kq;
  Pair p;
  int tag_old = 0, tag_new = 0;
  const int number = p.a.get();
  CHECK(kq.change(number, EVFILT_READ, EV_ADD | EV_CLEAR, 0, &tag_old) == 0);
  CHECK(kq.change(number, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, &tag_old) == 0);
  struct kevent ev[8];
  CHECK(kq.poll(ev, 8) == 1);  // writable
  Pair q;
  p.a.reset();  // closed outside kevent: BSD drops both knotes
  Fd reused(::dup2(q.a.get(), number));
  REQUIRE(reused.get() == number);
  // Only the new read knote exists: no write event from the old registration.
  CHECK(kq.change(number, EVFILT_READ, EV_ADD | EV_CLEAR, 0, &tag_new) == 0);
  CHECK(kq.poll(ev, 8) == 0);
  REQUIRE(::write(q.b.get(), "x", 1) == 1);
  REQUIRE(kq.poll(ev, 8, 100ms) == 1);
  CHECK(ev[0].filter == EVFILT_READ);
  CHECK(ev[0].udata == &tag_new);
  CHECK(kq.change(number, EVFILT_WRITE, EV_DELETE) == ENOENT);
}

TEST_CASE("kqueue emulation: timeouts -- {0, 0} looks, a timespec waits at least that long") {
  Kq kq;
  struct kevent ev[8];
  auto t0 = std::chrono::steady_clock::now();
  CHECK(kq.poll(ev, 8, 0ns) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 50ms);
  t0 = std::chrono::steady_clock::now();
  CHECK(kq.poll(ev, 8, 1500us) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 >= 1500us);
  // nevents 0: no wait at all, even without a timeout.
  t0 = std::chrono::steady_clock::now();
  CHECK(::kevent(kq.fd.get(), nullptr, 0, ev, 0, nullptr) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 50ms);
}
