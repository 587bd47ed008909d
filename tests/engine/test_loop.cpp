// tests/engine/test_loop.cpp -- the engine suite: every test runs against every backend
// under test, on loopback TCP only, each backend a doctest subcase named "backend <name>"
// (for_each_backend in loopback.h), so that doctest's output names it. One suite for every
// OS: engine_tests runs it on io_uring, libaio and epoll (Linux), engine_tests_kqueue on
// kqueue over the test-only kqueue emulation, engine_tests_iocp on IOCP (the Windows cross
// build, under Wine); what the test side spells differently on Winsock is in socket_shim.h.
// Backend-specific tests live beside it: test_uring.cpp, test_libaio.cpp,
// test_open_loop_linux.cpp (Linux's probe ladder), tests/win32/test_iocp_specific.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/engine/loopback.h"

using namespace pp;
using namespace pp::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// accept

TEST_CASE("accept: single-shot gives one non-blocking, close-on-exec connection") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    Probe acc;
    acc.op.prep_accept(l.fd.get(), false, Probe::on_complete, &acc);
    submit(loop, acc.op);
    run_for(loop, 20ms);
    CHECK_FALSE(acc.done());  // nobody connected yet
    Fd client = connect_client(l.port);
    PP_RUN_UNTIL(loop, acc.done());
    check_probe(acc);
    REQUIRE(acc.last() >= 0);
    Fd conn(static_cast<int>(acc.last()));
    CHECK_FALSE(inherited_by_children(conn.get()));
    if (auto nb = nonblocking(conn.get())) CHECK(*nb);  // not readable on Windows (shim)
    // It is really the client's connection.
    write_all(client.get(), "ping");
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(conn.get(), got), got == "ping"));
  });
}

TEST_CASE("accept: multishot keeps accepting until cancelled") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    Probe acc;
    acc.op.prep_accept(l.fd.get(), true, Probe::on_complete, &acc);
    submit(loop, acc.op);
    std::vector<Fd> clients;
    for (int i = 0; i < 5; ++i) clients.push_back(connect_client(l.port));
    PP_RUN_UNTIL(loop, acc.results.size() == 5);
    // Later connections are picked up by the same operation.
    for (int i = 0; i < 3; ++i) clients.push_back(connect_client(l.port));
    PP_RUN_UNTIL(loop, acc.results.size() == 8);
    std::vector<Fd> conns;
    for (std::size_t i = 0; i < 8; ++i) {
      CHECK(acc.results[i] >= 0);
      CHECK(acc.mores[i]);
      conns.emplace_back(static_cast<int>(acc.results[i]));
    }
    CHECK_FALSE(acc.done());
    cancel_and_wait(loop, acc);
    check_probe(acc);
    CHECK(acc.results.size() == 9);
  });
}

// ---------------------------------------------------------------------------------------
// recv

TEST_CASE("recv: single-shot, data already there and data arriving later") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    write_all(p.client.get(), "hello");
    Probe r1;
    r1.op.prep_recv(p.server.get(), false, Probe::on_complete, &r1);
    submit(loop, r1.op);
    CHECK_FALSE(r1.done());
    PP_RUN_UNTIL(loop, r1.done());
    check_probe(r1);
    CHECK(r1.last() == 5);
    CHECK(r1.bytes == "hello");

    Probe r2;
    r2.op.prep_recv(p.server.get(), false, Probe::on_complete, &r2);
    submit(loop, r2.op);
    run_for(loop, 20ms);
    CHECK_FALSE(r2.done());
    write_all(p.client.get(), "world!");
    PP_RUN_UNTIL(loop, r2.done());
    check_probe(r2);
    CHECK(r2.bytes == "world!");

    // EOF on a single-shot recv is result 0.
    Probe r3;
    r3.op.prep_recv(p.server.get(), false, Probe::on_complete, &r3);
    submit(loop, r3.op);
    p.client.reset();
    PP_RUN_UNTIL(loop, r3.done());
    CHECK(r3.last() == 0);
  });
}

TEST_CASE("recv: a single-shot recv resubmitted from its own callback") {
  struct Reader {
    Loop* loop;
    Operation op;
    std::string got;
    int completions = 0;
    bool eof = false;
    static void cb(Operation& op, const Completion& c) {
      auto* r = static_cast<Reader*>(op.user);
      ++r->completions;
      if (c.result > 0) {
        r->got.append(reinterpret_cast<const char*>(c.data.data()), c.data.size());
        op.prep_recv(op.fd, false, &Reader::cb, r);
        r->loop->submit(op);  // reusing the operation after its last completion is allowed
      } else {
        r->eof = c.result == 0;
      }
    }
  };
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    Reader r{&loop, {}, {}, 0, false};
    r.op.prep_recv(p.server.get(), false, &Reader::cb, &r);
    submit(loop, r.op);
    std::string want;
    for (int i = 0; i < 5; ++i) {
      std::string msg = "message " + std::to_string(i) + ";";
      want += msg;
      write_all(p.client.get(), msg);
      PP_RUN_UNTIL(loop, r.got == want);
    }
    p.client.reset();
    PP_RUN_UNTIL(loop, r.eof);
  });
}

TEST_CASE("recv: multishot delivers everything, then EOF as its last completion") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    Probe r;
    r.op.prep_recv(p.server.get(), true, Probe::on_complete, &r);
    submit(loop, r.op);
    write_all(p.client.get(), "a");
    PP_RUN_UNTIL(loop, r.bytes == "a");
    CHECK(r.last_more());
    write_all(p.client.get(), "bc");
    PP_RUN_UNTIL(loop, r.bytes == "abc");
    // Far more than one engine buffer, written as fast as the engine reads.
    std::string big = pattern(3 << 20);
    std::size_t pos = 0;
    PP_RUN_UNTIL(loop,
                 (write_available(p.client.get(), big, pos), r.bytes.size() == 3 + big.size()));
    CHECK(r.bytes.substr(3) == big);
    CHECK_FALSE(r.done());
    ::shutdown(p.client.get(), SHUT_WR);
    PP_RUN_UNTIL(loop, r.done());
    check_probe(r);
    CHECK(r.last() == 0);
    for (std::size_t i = 0; i + 1 < r.results.size(); ++i) CHECK(r.results[i] > 0);
  });
}

// ---------------------------------------------------------------------------------------
// send

TEST_CASE("send: gathered slices arrive in order as one stream") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    const std::string a = "Hello, ", b, c = "gathered ", d = "world";
    IoSlice slices[] = {
        {a.data(), a.size()}, {b.data(), 0}, {c.data(), c.size()}, {d.data(), d.size()}};
    Probe s;
    s.op.prep_send(p.server.get(), slices, Probe::on_complete, &s);
    submit(loop, s.op);
    CHECK_FALSE(s.done());
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got), s.done() && got.size() == 21));
    check_probe(s);
    CHECK(s.last() == 21);
    CHECK(got == "Hello, gathered world");

    // Nothing to send is a send of 0 bytes.
    Probe e;
    e.op.prep_send(p.server.get(), {}, Probe::on_complete, &e);
    submit(loop, e.op);
    PP_RUN_UNTIL(loop, e.done());
    CHECK(e.last() == 0);
  });
}

TEST_CASE("send: large and partial -- many slices through small buffers, then the next send") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    // A small send buffer forces many partial sends (and EAGAIN) inside each send.
    // (A tiny receive window would make TCP itself crawl on zero-window probes.)
    set_buffer_sizes(p.server.get(), 128 << 10, 0);
    const std::string payload = pattern(4 << 20, 7);
    // 1,500 slices of uneven sizes (0 to 5,592 bytes), more than one sendmsg/iovec batch.
    std::vector<IoSlice> slices;
    std::size_t off = 0;
    for (std::size_t i = 0; off < payload.size(); ++i) {
      std::size_t n = std::min(payload.size() - off, (i * 2654435761u) % 5593);
      slices.push_back({payload.data() + off, n});
      off += n;
    }
    REQUIRE(slices.size() > 1000);
    const std::string tail = pattern(100'000, 99);
    IoSlice tail_slice[] = {{tail.data(), tail.size()}};
    Probe s1, s2;
    s1.op.prep_send(p.server.get(), slices, Probe::on_complete, &s1);
    s2.op.prep_send(p.server.get(), tail_slice, Probe::on_complete, &s2);
    submit(loop, s1.op);
    std::string got;
    const std::size_t want = payload.size() + tail.size();
    INFO("received " << got.size() << " of " << want);
    // The caller orders its sends (core/outbound.h): the next one goes after the first ends.
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got), s1.done()));
    submit(loop, s2.op);
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got), s2.done() && got.size() >= want));
    check_probe(s1);
    check_probe(s2);
    CHECK(s1.last() == static_cast<std::int64_t>(payload.size()));
    CHECK(s2.last() == static_cast<std::int64_t>(tail.size()));
    REQUIRE(got.size() == want);
    CHECK(got.compare(0, payload.size(), payload) == 0);
    CHECK(got.compare(payload.size(), tail.size(), tail) == 0);
  });
}

// ---------------------------------------------------------------------------------------
// sendfile

namespace {
struct TempFile {
  std::string path;
  std::string content;
  Fd fd;
  std::uint64_t size = 0;
  explicit TempFile(std::size_t n) : content(pattern(n, 1234)) {
    REQUIRE(write_temp_file(content, path));
    std::string err;
    fd = Fd(static_cast<int>(open_file_for_send(path, size, err)));
    REQUIRE_MESSAGE(fd.get() >= 0, err);
  }
  ~TempFile() {
    fd.reset();  // first: Windows does not delete an open file
    remove_file(path);
  }
};

/// Sends [off, off+len) of `f` and returns what the client received; checks the result.
std::string sendfile_range(Loop& loop, TcpPair& p, TempFile& f, std::uint64_t off,
                           std::uint64_t len, std::int64_t want_result) {
  Probe s;
  s.op.prep_sendfile(p.server.get(), f.fd.get(), off, len, Probe::on_complete, &s);
  submit(loop, s.op);
  std::string got;
  PP_RUN_UNTIL(
      loop,
      (read_available(p.client.get(), got),
       s.done() && got.size() >= static_cast<std::size_t>(std::max<std::int64_t>(s.last(), 0))));
  check_probe(s);
  CHECK(s.last() == want_result);
  return got;
}
}  // namespace

TEST_CASE("sendfile: byte-exact, offset and length, past the end of the file") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    set_buffer_sizes(p.server.get(), 128 << 10, 0);  // several EAGAINs inside one sendfile
    TempFile f(3 << 20);
    const auto n = static_cast<std::int64_t>(f.content.size());
    CHECK(sendfile_range(loop, p, f, 0, f.size, n) == f.content);
    CHECK(sendfile_range(loop, p, f, 1000, 70'000, 70'000) == f.content.substr(1000, 70'000));
    // A range that runs past the end sends up to the end.
    CHECK(sendfile_range(loop, p, f, f.size - 1000, 5000, 1000) == f.content.substr(f.size - 1000));
    // Starting past the end sends nothing.
    CHECK(sendfile_range(loop, p, f, f.size + 10, 100, 0).empty());
    // Zero length.
    CHECK(sendfile_range(loop, p, f, 5, 0, 0).empty());
  });
}

// ---------------------------------------------------------------------------------------
// connect

TEST_CASE("connect: success, and ECONNREFUSED from a port nobody listens on") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    Endpoint ep = l.endpoint();
    std::string err;
    Fd sock(static_cast<int>(open_stream_socket(ep, err)));
    REQUIRE_MESSAGE(sock.get() >= 0, err);
    Probe c;
    c.op.prep_connect(sock.get(), &ep, Probe::on_complete, &c);
    submit(loop, c.op);
    CHECK_FALSE(c.done());
    PP_RUN_UNTIL(loop, c.done());
    check_probe(c);
    CHECK(c.last() == 0);
    Fd server(accept_blocking(l.fd.get()));
    REQUIRE(server.get() >= 0);
    write_all(server.get(), "hi");
    Probe r;
    r.op.prep_recv(sock.get(), false, Probe::on_complete, &r);
    submit(loop, r.op);
    PP_RUN_UNTIL(loop, r.done());
    CHECK(r.bytes == "hi");

    // A port that is bound (so nobody else takes it) but not listening: the kernel answers
    // the SYN with a reset.
    Fd bound(plain_socket());
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(bound.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    Endpoint closed;
    REQUIRE(resolve_endpoint("127.0.0.1", local_port(bound.get()), closed, err));
    Fd sock2(static_cast<int>(open_stream_socket(closed, err)));
    Probe refused;
    refused.op.prep_connect(sock2.get(), &closed, Probe::on_complete, &refused);
    submit(loop, refused.op);
    PP_RUN_UNTIL(loop, refused.done());
    check_probe(refused);
    CHECK(refused.last() == -ECONNREFUSED);
  });
}

// ---------------------------------------------------------------------------------------
// timeout

TEST_CASE("timeout: fires after at least its duration, in deadline order, sub-millisecond too") {
  for_each_backend([](Loop& loop, const std::string&) {
    Probe t;
    t.op.prep_timeout(20ms, Probe::on_complete, &t);
    auto start = Clock::now();
    submit(loop, t.op);
    PP_RUN_UNTIL(loop, t.done());
    auto took = Clock::now() - start;
    check_probe(t);
    CHECK(t.last() == 0);
    CHECK(took >= 20ms);
    CHECK(took < 2s);

    // Fires in deadline order, whatever the submission order.
    std::vector<int> order;
    struct Tagged {
      Operation op;
      int tag;
      std::vector<int>* order;
    };
    auto cb = [](Operation& op, const Completion&) {
      auto* t = static_cast<Tagged*>(op.user);
      t->order->push_back(t->tag);
    };
    Tagged a{{}, 30, &order}, b{{}, 10, &order}, c{{}, 20, &order};
    for (Tagged* x : {&a, &b, &c}) {
      x->op.prep_timeout(std::chrono::milliseconds(x->tag), cb, x);
      submit(loop, x->op);
    }
    PP_RUN_UNTIL(loop, order.size() == 3);
    CHECK(order == std::vector<int>{10, 20, 30});

    // A sub-millisecond timer never fires early, and is not rounded up to a coarse tick:
    // one run in up to 50 must beat 2 ms. A coarse tick (Windows' 15.6 ms, a 4 ms HZ)
    // makes every run miss; load only delays some of them. Five tries were too few: with
    // two CPU hogs and a compiler on the 2 cores, Wine's best of five was 2.14 ms.
    auto best = std::chrono::nanoseconds::max();
    for (int i = 0; i < 50 && best >= 2ms; ++i) {
      Probe fine;
      fine.op.prep_timeout(300us, Probe::on_complete, &fine);
      start = Clock::now();
      submit(loop, fine.op);
      while (!fine.done() && Clock::now() - start < 2s) loop.run_once(-1ns);
      took = Clock::now() - start;
      CHECK(fine.done());
      CHECK(took >= 300us);
      best = std::min(best, std::chrono::duration_cast<std::chrono::nanoseconds>(took));
    }
    CHECK(best < 2ms);

    // Zero duration completes on a later run_once, never inside submit.
    Probe zero;
    zero.op.prep_timeout(0ns, Probe::on_complete, &zero);
    submit(loop, zero.op);
    CHECK_FALSE(zero.done());
    PP_RUN_UNTIL(loop, zero.done());
    check_probe(zero);
  });
}

// ---------------------------------------------------------------------------------------
// cancel

TEST_CASE("cancel: pending recv, pending multishot recv, pending timeout, finished op") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    Probe r;
    r.op.prep_recv(p.server.get(), false, Probe::on_complete, &r);
    submit(loop, r.op);
    run_for(loop, 10ms);
    cancel_and_wait(loop, r);
    check_probe(r);

    Probe m;
    m.op.prep_recv(p.server.get(), true, Probe::on_complete, &m);
    submit(loop, m.op);
    write_all(p.client.get(), "x");
    PP_RUN_UNTIL(loop, m.bytes == "x");
    cancel_and_wait(loop, m);
    check_probe(m);

    // The connection still works after its recvs were cancelled.
    Probe r2;
    r2.op.prep_recv(p.server.get(), false, Probe::on_complete, &r2);
    submit(loop, r2.op);
    write_all(p.client.get(), "after");
    PP_RUN_UNTIL(loop, r2.done());
    CHECK(r2.bytes == "after");

    Probe t;
    t.op.prep_timeout(60s, Probe::on_complete, &t);
    submit(loop, t.op);
    run_for(loop, 5ms);
    cancel_and_wait(loop, t);
    check_probe(t);

    // Cancelling what already finished: -ENOENT, and the finished op hears nothing more.
    Probe done;
    done.op.prep_timeout(0ns, Probe::on_complete, &done);
    submit(loop, done.op);
    PP_RUN_UNTIL(loop, done.done());
    Probe c;
    c.op.prep_cancel(&done.op, Probe::on_complete, &c);
    submit(loop, c.op);
    PP_RUN_UNTIL(loop, c.done());
    CHECK(c.last() == -ENOENT);
    run_for(loop, 5ms);
    CHECK(done.results.size() == 1);
  });
}

// ---------------------------------------------------------------------------------------
// close

TEST_CASE("close: cancels what is pending on the handle, then closes it") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    Probe r;
    r.op.prep_recv(p.server.get(), true, Probe::on_complete, &r);
    submit(loop, r.op);
    run_for(loop, 5ms);
    Probe c;
    c.op.prep_close(p.server.release(), Probe::on_complete, &c);
    submit(loop, c.op);
    PP_RUN_UNTIL(loop, c.done() && r.done());
    check_probe(r);
    check_probe(c);
    CHECK(r.last() == -ECANCELED);
    CHECK(c.last() == 0);
    // The peer sees the connection end.
    std::string got;
    PP_RUN_UNTIL(loop, !read_available(p.client.get(), got));

    // A handle with nothing pending just closes.
    auto q = tcp_pair(l);
    close_and_wait(loop, q.server);
  });
}

// ---------------------------------------------------------------------------------------
// Peer errors

TEST_CASE("peer reset mid-stream ends that connection only") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto a = tcp_pair(l);
    auto b = tcp_pair(l);
    Probe ra, rb;
    ra.op.prep_recv(a.server.get(), true, Probe::on_complete, &ra);
    rb.op.prep_recv(b.server.get(), true, Probe::on_complete, &rb);
    submit(loop, ra.op);
    submit(loop, rb.op);
    write_all(a.client.get(), "some data");
    PP_RUN_UNTIL(loop, ra.bytes == "some data");
    close_with_reset(a.client);
    PP_RUN_UNTIL(loop, ra.done());
    check_probe(ra);
    CHECK(ra.last() == -ECONNRESET);
    // A send on the reset connection fails; it does not raise SIGPIPE (which would end this
    // process).
    const std::string msg = "anyone there?";
    IoSlice sl[] = {{msg.data(), msg.size()}};
    Probe sa;
    sa.op.prep_send(a.server.get(), sl, Probe::on_complete, &sa);
    submit(loop, sa.op);
    PP_RUN_UNTIL(loop, sa.done());
    CHECK((sa.last() == -EPIPE || sa.last() == -ECONNRESET));

    // The other connection keeps working both ways.
    write_all(b.client.get(), "still here");
    PP_RUN_UNTIL(loop, rb.bytes == "still here");
    Probe sb;
    sb.op.prep_send(b.server.get(), sl, Probe::on_complete, &sb);
    submit(loop, sb.op);
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(b.client.get(), got), sb.done() && got == msg));
    CHECK(sb.last() == static_cast<std::int64_t>(msg.size()));
    CHECK_FALSE(rb.done());
    cancel_and_wait(loop, rb);
  });
}

TEST_CASE("peer half-close: recv sees EOF, sending still works") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    Probe r;
    r.op.prep_recv(p.server.get(), true, Probe::on_complete, &r);
    submit(loop, r.op);
    write_all(p.client.get(), "last words");
    ::shutdown(p.client.get(), SHUT_WR);
    PP_RUN_UNTIL(loop, r.done());
    check_probe(r);
    CHECK(r.bytes == "last words");
    CHECK(r.last() == 0);
    const std::string bye = "bye";
    IoSlice sl[] = {{bye.data(), bye.size()}};
    Probe s;
    s.op.prep_send(p.server.get(), sl, Probe::on_complete, &s);
    submit(loop, s.op);
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got), s.done() && got == bye));
    CHECK(s.last() == 3);
  });
}

TEST_CASE("peer vanishing in the middle of a large send fails that send, without SIGPIPE") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    const std::string big = pattern(16 << 20, 3);
    IoSlice sl[] = {{big.data(), big.size()}};
    Probe s;
    s.op.prep_send(p.server.get(), sl, Probe::on_complete, &s);
    submit(loop, s.op);
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got), got.size() > 100'000));
    close_with_reset(p.client);
    PP_RUN_UNTIL(loop, s.done());
    check_probe(s);
    INFO("result " << s.last() << ": " << error_text(s.last()));
    if (under_wine()) {
      // Wine: the send completes as fully sent (all 16 MiB) although the peer reset the
      // connection part-way -- the completion packet itself says so, with or without
      // FILE_SKIP_COMPLETION_PORT_ON_SUCCESS (PYPARALLEL_IOCP_NO_SKIP=1 gives the same);
      // Windows fails it with WSAECONNRESET. Marked, not weakened: the check stands
      // wherever the binary runs on Windows itself, and on every POSIX backend.
      MESSAGE("under Wine: a send to a reset peer reported " << s.last() << "; not checked");
    } else {
      CHECK((s.last() == -ECONNRESET || s.last() == -EPIPE));
    }
  });
}

TEST_CASE("sendfile to a vanished peer fails, and every later one, never raising SIGPIPE") {
  // sendfile(2) has no MSG_NOSIGNAL: the backends block SIGPIPE on the loop's thread and
  // consume it (core/loop.h). With the default disposition a raised SIGPIPE kills this
  // process, so surviving is the assertion. (Windows has no SIGPIPE: there the case checks
  // the errors, in Winsock's words: socket_shim.h.)
  DefaultSigpipe sigpipe;
  for_each_backend([](Loop& loop, const std::string&) {
    // Each backend blocks SIGPIPE itself: undo what an earlier backend's loop did.
    DefaultSigpipe::unblock_on_this_thread();
    Listener l;
    auto p = tcp_pair(l);
    TempFile f(8 << 20);
    Probe first;
    first.op.prep_sendfile(p.server.get(), f.fd.get(), 0, f.size, Probe::on_complete, &first);
    submit(loop, first.op);
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got), got.size() > 100'000));
    close_with_reset(p.client);
    PP_RUN_UNTIL(loop, first.done());
    INFO("first " << first.last() << ": " << error_text(first.last()));
    if (under_wine()) {
      // Wine: TransmitFile to a peer that reset part-way reports every byte sent (see the
      // send case above); Windows fails it. Checked only off Wine.
      MESSAGE("under Wine: a sendfile to a reset peer reported " << first.last()
                                                                 << "; not checked");
    } else {
      CHECK(reset_peer_sendfile_error(first.last()));
    }
    // The reset has been reported: every later write to the socket fails (EPIPE, with a
    // SIGPIPE on POSIX).
    for (int i = 0; i < 3; ++i) {
      Probe again;
      again.op.prep_sendfile(p.server.get(), f.fd.get(), 0, 4096, Probe::on_complete, &again);
      submit(loop, again.op);
      PP_RUN_UNTIL(loop, again.done());
      INFO("again " << again.last() << ": " << error_text(again.last()));
      CHECK(write_after_reset_error(again.last()));
    }
  });
}

// ---------------------------------------------------------------------------------------
// Scale: 1,000 concurrent connections in one loop, client and server sides both on it.

namespace {

constexpr int kConnections = 1000;

struct Scale;

struct ServerConn {
  Scale* scale;
  int fd;
  Operation recv, send, close;
  std::string in;
  IoSlice slice{};
  bool sending = false;
};

struct ClientConn {
  Scale* scale;
  int fd = -1;
  std::string msg, got;
  Operation connect, send, recv, close;
  IoSlice slice{};
  Endpoint* ep;
};

struct Scale {
  Loop* loop;
  Operation accept;
  std::vector<std::unique_ptr<ServerConn>> servers;
  int server_closed = 0, client_done = 0, client_closed = 0, errors = 0;
  std::string first_error;
  void error(const char* what, std::int64_t r) {
    if (errors++ == 0) first_error = std::string(what) + ": " + error_text(r);
  }
};

void on_server_close(Operation& op, const Completion&) {
  auto* s = static_cast<ServerConn*>(op.user);
  ++s->scale->server_closed;
}
void on_server_send(Operation& op, const Completion& c) {
  auto* s = static_cast<ServerConn*>(op.user);
  if (c.result < 0) s->scale->error("server send", c.result);
}
void on_server_recv(Operation& op, const Completion& c) {
  auto* s = static_cast<ServerConn*>(op.user);
  if (c.result > 0) {
    // Echo once the whole line is in (loopback may split it).
    s->in.append(reinterpret_cast<const char*>(c.data.data()), c.data.size());
    if (!s->sending && !s->in.empty() && s->in.back() == '\n') {
      s->sending = true;
      s->slice = {s->in.data(), s->in.size()};
      s->send.prep_send(s->fd, {&s->slice, 1}, on_server_send, s);
      s->scale->loop->submit(s->send);
    }
    return;
  }
  if (c.result < 0 && c.result != -ECANCELED) s->scale->error("server recv", c.result);
  if (!c.more) {
    // EOF from the client: done with this connection.
    s->close.prep_close(s->fd, on_server_close, s);
    s->scale->loop->submit(s->close);
  }
}
void on_accept(Operation& op, const Completion& c) {
  auto* sc = static_cast<Scale*>(op.user);
  if (c.result < 0) {
    if (c.result != -ECANCELED) sc->error("accept", c.result);
    return;
  }
  auto s = std::make_unique<ServerConn>();
  s->scale = sc;
  s->fd = static_cast<int>(c.result);
  s->recv.prep_recv(s->fd, true, on_server_recv, s.get());
  sc->loop->submit(s->recv);
  sc->servers.push_back(std::move(s));
}

void on_client_close(Operation& op, const Completion&) {
  ++static_cast<ClientConn*>(op.user)->scale->client_closed;
}
void on_client_recv(Operation& op, const Completion& c) {
  auto* k = static_cast<ClientConn*>(op.user);
  if (c.result > 0) {
    k->got.append(reinterpret_cast<const char*>(c.data.data()), c.data.size());
    if (k->got == k->msg) {
      ++k->scale->client_done;
      // Closing cancels this multishot recv (its last completion is -ECANCELED).
      k->close.prep_close(k->fd, on_client_close, k);
      k->scale->loop->submit(k->close);
    }
    return;
  }
  if (c.result != -ECANCELED) k->scale->error("client recv", c.result);
}
void on_client_send(Operation& op, const Completion& c) {
  auto* k = static_cast<ClientConn*>(op.user);
  if (c.result != static_cast<std::int64_t>(k->msg.size()))
    k->scale->error("client send", c.result);
}
void on_client_connect(Operation& op, const Completion& c) {
  auto* k = static_cast<ClientConn*>(op.user);
  if (c.result != 0) {
    k->scale->error("connect", c.result);
    return;
  }
  k->recv.prep_recv(k->fd, true, on_client_recv, k);
  k->scale->loop->submit(k->recv);
  k->slice = {k->msg.data(), k->msg.size()};
  k->send.prep_send(k->fd, {&k->slice, 1}, on_client_send, k);
  k->scale->loop->submit(k->send);
}

}  // namespace

TEST_CASE("1,000 concurrent loopback connections each exchange a message") {
  // Two fds per connection in this process (client and server side), plus slack.
  std::string why;
  REQUIRE_MESSAGE(raise_descriptor_limit(2 * kConnections + 256, why), why);

  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    Endpoint ep = l.endpoint();
    Scale sc{&loop, {}, {}, 0, 0, 0, 0, {}};
    sc.accept.prep_accept(l.fd.get(), true, on_accept, &sc);
    submit(loop, sc.accept);
    std::vector<std::unique_ptr<ClientConn>> clients;
    for (int i = 0; i < kConnections; ++i) {
      auto k = std::make_unique<ClientConn>();
      k->scale = &sc;
      k->ep = &ep;
      k->msg = "hello from client " + std::to_string(i) + "\n";
      std::string err;
      k->fd = static_cast<int>(open_stream_socket(ep, err));
      REQUIRE_MESSAGE(k->fd >= 0, err);
      k->connect.prep_connect(k->fd, &ep, on_client_connect, k.get());
      submit(loop, k->connect);
      clients.push_back(std::move(k));
    }
    bool ok = run_until(
        loop,
        [&] {
          return sc.errors > 0 ||
                 (sc.client_closed == kConnections && sc.server_closed == kConnections);
        },
        60s);
    INFO("clients done " << sc.client_done << ", client closes " << sc.client_closed
                         << ", server closes " << sc.server_closed << ", accepted "
                         << sc.servers.size() << ", first error: " << sc.first_error);
    CHECK(ok);
    CHECK(sc.errors == 0);
    CHECK(sc.client_done == kConnections);
    CHECK(sc.servers.size() == static_cast<std::size_t>(kConnections));
    Probe c;
    c.op.prep_cancel(&sc.accept, Probe::on_complete, &c);
    submit(loop, c.op);
    PP_RUN_UNTIL(loop, c.done());
    CHECK(c.last() == 0);
    // Let every last completion (cancelled recvs) arrive before the connections are freed.
    run_for(loop, 20ms);
  });
}

// ---------------------------------------------------------------------------------------
// post

TEST_CASE("post: another thread wakes a loop blocked in run_once") {
  for_each_backend([](Loop& loop, const std::string&) {
    std::atomic<bool> ran{false};
    std::thread poster([&] {
      std::this_thread::sleep_for(50ms);
      loop.post([&] { ran = true; });
    });
    auto start = Clock::now();
    int n = 0;
    while (!ran && Clock::now() - start < 5s) n += loop.run_once(5s);
    auto took = Clock::now() - start;
    poster.join();
    CHECK(ran);
    CHECK(n >= 1);
    CHECK(took < 2s);  // woken, not timed out

    // Many threads posting at once: every function runs exactly once, on the loop's thread.
    std::atomic<int> count{0};
    std::atomic<bool> wrong_thread{false};
    const auto loop_thread = std::this_thread::get_id();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i)
          loop.post([&] {
            if (std::this_thread::get_id() != loop_thread) wrong_thread = true;
            ++count;
          });
      });
    bool all = run_until(loop, [&] { return count == 4000; });
    for (auto& t : threads) t.join();
    CHECK(all);
    run_for(loop, 5ms);
    CHECK(count == 4000);
    CHECK_FALSE(wrong_thread);
  });
}

// ---------------------------------------------------------------------------------------
// Lifetimes and shutdown

TEST_CASE("an operation may be freed by its own last callback") {
  struct Owned {
    Operation op;
    int* finished;
  };
  auto cb = [](Operation& op, const Completion& c) {
    if (c.more) return;
    auto* o = static_cast<Owned*>(op.user);
    ++*o->finished;
    delete o;  // the engine must not touch op after this
  };
  for_each_backend([&](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    int finished = 0;
    auto* t = new Owned{{}, &finished};
    t->op.prep_timeout(1ms, cb, t);
    submit(loop, t->op);
    auto* r = new Owned{{}, &finished};
    r->op.prep_recv(p.server.get(), true, cb, r);
    submit(loop, r->op);
    write_all(p.client.get(), "data");
    p.client.reset();  // data then EOF: the EOF completion frees it
    const std::string msg = "x";
    IoSlice sl[] = {{msg.data(), 1}};
    auto* s = new Owned{{}, &finished};
    s->op.prep_send(p.server.get(), sl, cb, s);
    submit(loop, s->op);
    PP_RUN_UNTIL(loop, finished == 3);
  });
}

TEST_CASE("shutdown with connections open: cancel and close everything, the loop drains") {
  struct Tracker {
    int outstanding = 0;
    int finals = 0;
    int doubled = 0;
  };
  struct Op {
    Operation op;
    Tracker* t;
    bool finished = false;
  };
  auto cb = [](Operation& op, const Completion& c) {
    if (c.more) return;
    auto* o = static_cast<Op*>(op.user);
    if (o->finished) ++o->t->doubled;
    o->finished = true;
    --o->t->outstanding;
    ++o->t->finals;
  };
  for_each_backend([&](Loop& loop, const std::string&) {
    Tracker tr;
    std::vector<std::unique_ptr<Op>> ops;
    auto make = [&] {
      ops.push_back(std::make_unique<Op>());
      ops.back()->t = &tr;
      ++tr.outstanding;
      return ops.back().get();
    };
    Listener l;
    Op* acc = make();
    acc->op.prep_accept(l.fd.get(), true, cb, acc);
    submit(loop, acc->op);
    std::vector<Op*> timers;
    for (int i = 0; i < 4; ++i) {
      timers.push_back(make());
      timers.back()->op.prep_timeout(std::chrono::seconds(60 + i), cb, timers.back());
      submit(loop, timers.back()->op);
    }
    const std::string big = pattern(8 << 20, 5);
    IoSlice sl[] = {{big.data(), big.size()}};
    std::vector<TcpPair> pairs;
    for (int i = 0; i < 64; ++i) {
      pairs.push_back(tcp_pair(l));
      auto& p = pairs.back();
      Op* r = make();
      r->op.prep_recv(p.server.get(), true, cb, r);
      submit(loop, r->op);
      if (i % 2 == 0) {
        // The client never reads: this send stays pending.
        Op* s = make();
        s->op.prep_send(p.server.get(), sl, cb, s);
        submit(loop, s->op);
      }
      if (i % 3 == 0) write_all(p.client.get(), "in flight");
    }
    run_for(loop, 30ms);
    CHECK(tr.outstanding == 1 + 4 + 64 + 32);

    // Shutdown: cancel the accept and the timers, close every connection (which cancels its
    // pending recv and send).
    std::vector<Op*> control;
    for (Op* victim : std::vector<Op*>{acc, timers[0], timers[1], timers[2], timers[3]}) {
      Op* c = make();
      c->op.prep_cancel(&victim->op, cb, c);
      submit(loop, c->op);
      control.push_back(c);
    }
    for (auto& p : pairs) {
      Op* c = make();
      c->op.prep_close(p.server.release(), cb, c);
      submit(loop, c->op);
      control.push_back(c);
    }
    PP_RUN_UNTIL(loop, tr.outstanding == 0);
    CHECK(tr.doubled == 0);
    // Nothing is left: further turns run no callbacks.
    int more = 0;
    for (int i = 0; i < 5; ++i) more += loop.run_once(2ms);
    CHECK(more == 0);
    CHECK(tr.doubled == 0);
  });
}

// ---------------------------------------------------------------------------------------
// Fairness, queues, options

TEST_CASE("a connection flooding the loop does not starve another") {
  struct Counter {
    Operation op;
    std::atomic<std::uint64_t> bytes{0};
    int finals = 0;
    static void cb(Operation& op, const Completion& c) {
      auto* k = static_cast<Counter*>(op.user);
      if (c.result > 0) k->bytes += static_cast<std::uint64_t>(c.result);
      if (!c.more) ++k->finals;
      // A slow consumer (50 us per completion), so the writer outruns it and the socket
      // always has more: a backend that reads until EAGAIN would never come back.
      auto until = Clock::now() + 50us;
      while (Clock::now() < until) {
      }
    }
  };
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto a = tcp_pair(l);
    auto b = tcp_pair(l);
    Counter flood;
    flood.op.prep_recv(a.server.get(), true, &Counter::cb, &flood);
    submit(loop, flood.op);
    Probe quiet;
    quiet.op.prep_recv(b.server.get(), true, Probe::on_complete, &quiet);
    submit(loop, quiet.op);
    // Another thread writes to `a` as fast as the kernel takes it, so `a` is never drained.
    std::atomic<bool> stop{false};
    std::thread firehose([&] { write_until_stopped(a.client.get(), stop); });
    bool flowing = run_until(loop, [&] { return flood.bytes > (4u << 20); });
    write_all(b.client.get(), "me too");
    auto start = Clock::now();
    bool served = run_until(
        loop, [&] { return quiet.bytes == "me too"; }, 5s);
    auto took = Clock::now() - start;
    stop = true;
    ::shutdown(a.client.get(), SHUT_RDWR);  // unblocks the writer
    firehose.join();
    CHECK(flowing);
    CHECK(served);
    CHECK(took < 1s);
    cancel_and_wait(loop, quiet);
    Probe c;
    c.op.prep_cancel(&flood.op, Probe::on_complete, &c);
    submit(loop, c.op);
    PP_RUN_UNTIL(loop, flood.finals == 1 && c.done());
  });
}

TEST_CASE("send order is the caller's: a second output while one is in flight gets -EBUSY") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    const std::string big = pattern(8 << 20, 11), small = "never sent";
    IoSlice s1[] = {{big.data(), big.size()}};
    IoSlice s2[] = {{small.data(), small.size()}};
    TempFile f(1000);
    Probe first, second, third;
    first.op.prep_send(p.server.get(), s1, Probe::on_complete, &first);
    second.op.prep_send(p.server.get(), s2, Probe::on_complete, &second);
    third.op.prep_sendfile(p.server.get(), f.fd.get(), 0, 1000, Probe::on_complete, &third);
    submit(loop, first.op);
    run_for(loop, 20ms);  // the client does not read: `first` is stuck
    REQUIRE_FALSE(first.done());
    submit(loop, second.op);
    submit(loop, third.op);
    PP_RUN_UNTIL(loop, second.done() && third.done());
    CHECK(second.last() == -EBUSY);
    CHECK(third.last() == -EBUSY);
    REQUIRE_FALSE(first.done());
    std::string got;
    PP_RUN_UNTIL(loop,
                 (read_available(p.client.get(), got), first.done() && got.size() >= big.size()));
    CHECK(first.last() == static_cast<std::int64_t>(big.size()));
    CHECK(got == big);  // nothing of the refused ones slipped in
  });
}

TEST_CASE("cancel: a send blocked on a full socket ends with -ECANCELED; the next send works") {
  for_each_backend([](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    const std::string big = pattern(8 << 20, 12), after = "after the cancel";
    IoSlice s1[] = {{big.data(), big.size()}};
    IoSlice s2[] = {{after.data(), after.size()}};
    Probe first, second;
    first.op.prep_send(p.server.get(), s1, Probe::on_complete, &first);
    submit(loop, first.op);
    run_for(loop, 20ms);
    REQUIRE_FALSE(first.done());
    cancel_and_wait(loop, first);
    second.op.prep_send(p.server.get(), s2, Probe::on_complete, &second);
    submit(loop, second.op);
    std::string got;
    PP_RUN_UNTIL(loop, (read_available(p.client.get(), got),
                        second.done() && got.size() >= after.size() && got.ends_with(after)));
    CHECK(second.last() == static_cast<std::int64_t>(after.size()));
    // What the cancelled send had written is a prefix of it, and the next send follows it.
    CHECK(got.size() < big.size() + after.size());
    CHECK(got.compare(0, got.size() - after.size(), big, 0, got.size() - after.size()) == 0);
  });
}

TEST_CASE("an fd number reused after the caller closed it outside the loop") {
  for_each_backend([](Loop& loop, const std::string&) {
    int number;
    {
      Listener l1;
      number = l1.fd.get();
      Probe acc;
      acc.op.prep_accept(l1.fd.get(), false, Probe::on_complete, &acc);
      submit(loop, acc.op);
      run_for(loop, 5ms);  // it waits (and the backend may register the fd)
      Fd c = connect_client(l1.port);
      PP_RUN_UNTIL(loop, acc.done());
      REQUIRE(acc.last() >= 0);
      Fd conn(static_cast<int>(acc.last()));
      conn.reset();
      // l1 closes here with close(2) (closesocket on Windows), not through the loop.
    }
    Listener l2;
    INFO("old number " << number << ", new " << l2.fd.get());
    Probe acc;
    acc.op.prep_accept(l2.fd.get(), false, Probe::on_complete, &acc);
    submit(loop, acc.op);
    run_for(loop, 5ms);
    Fd c = connect_client(l2.port);
    PP_RUN_UNTIL(loop, acc.done());
    CHECK(acc.last() >= 0);
    if (acc.last() >= 0) close_fd(static_cast<int>(acc.last()));
  });
}

TEST_CASE("small receive buffers: every completion fits one buffer, nothing is lost") {
  LoopOptions opts;
  opts.recv_buffer_size = 4096;
  opts.recv_buffer_count = 8;
  opts.queue_depth = 64;
  auto body = [](Loop& loop, const std::string&) {
    Listener l;
    auto p = tcp_pair(l);
    Probe r;
    r.op.prep_recv(p.server.get(), true, Probe::on_complete, &r);
    submit(loop, r.op);
    const std::string data = pattern(1 << 20, 21);
    std::size_t pos = 0;
    PP_RUN_UNTIL(loop, (write_available(p.client.get(), data, pos), r.bytes.size() == data.size()));
    CHECK(r.bytes == data);
    for (auto res : r.results) CHECK(res <= 4096);
    CHECK_FALSE(r.done());
    p.client.reset();
    PP_RUN_UNTIL(loop, r.done());
    check_probe(r);
    CHECK(r.last() == 0);
  };
  for_each_backend(body, opts);
}

TEST_CASE("bounded work per connection: a backlog on one socket does not delay another") {
  // Small buffers make one socket's queued data many reads long; a backend that reads one
  // socket until EAGAIN serves every one of them before the other socket's message.
  LoopOptions opts;
  opts.recv_buffer_size = 512;
  opts.recv_buffer_count = 512;
  struct Seq {
    Operation op;
    char tag;
    std::string* order;
    static void cb(Operation& op, const Completion& c) {
      auto* s = static_cast<Seq*>(op.user);
      if (c.result > 0) s->order->push_back(s->tag);
    }
  };
  auto body = [](Loop& loop, const std::string&) {
    Listener l;
    auto a = tcp_pair(l);
    auto b = tcp_pair(l);
    const std::string bulk = pattern(48 << 10, 5);
    std::size_t pos = 0;
    write_available(a.client.get(), bulk, pos);
    REQUIRE(pos == bulk.size());
    write_all(b.client.get(), "me too");
    std::string order;
    Seq ra{{}, 'A', &order}, rb{{}, 'B', &order};
    ra.op.prep_recv(a.server.get(), true, &Seq::cb, &ra);
    rb.op.prep_recv(b.server.get(), true, &Seq::cb, &rb);
    submit(loop, ra.op);
    submit(loop, rb.op);
    PP_RUN_UNTIL(loop, order.find('B') != std::string::npos);
    auto before_b = order.find('B');
    INFO("completions of A before B's first: " << before_b);
    CHECK(before_b <= 64);  // A alone needs about 96
    Probe ca, cb;
    ca.op.prep_cancel(&ra.op, Probe::on_complete, &ca);
    cb.op.prep_cancel(&rb.op, Probe::on_complete, &cb);
    submit(loop, ca.op);
    submit(loop, cb.op);
    PP_RUN_UNTIL(loop, ca.done() && cb.done());
    run_for(loop, 5ms);  // the recvs' last completions, before they go out of scope
  };
  for_each_backend(body, opts);
}
