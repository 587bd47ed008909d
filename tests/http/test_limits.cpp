// Limits exactly at, and one past, each boundary: 414, 431 (bytes, fields), 413.
#include <doctest/doctest.h>

#include "tests/http/http_test_util.h"

using namespace pp::http;
using namespace pp::http::testing;

namespace {

// A request line of exactly `len` bytes (without CRLF).
std::string request_line(std::size_t len) {
  const std::string head = "GET /", tail = " HTTP/1.1";
  return head + std::string(len - head.size() - tail.size(), 'a') + tail;
}

// The status each path gives (0: complete, -2: incomplete); CHECKs agreement.
int outcome(std::string_view in, const ParserOptions& o = {}) {
  int first = -1;
  for (Path p : all_paths()) {
    OneParse r = parse_one(in, with_path(o, p));
    int s = r.result.status == ParseStatus::error        ? r.result.error_status
            : r.result.status == ParseStatus::incomplete ? -2
                                                         : 0;
    if (first == -1) first = s;
    CHECK_MESSAGE(s == first, path_name(p));
  }
  return first;
}

// A header section of exactly `bytes` bytes (field lines with CRLFs), starting
// with Host.
std::string header_section(std::size_t bytes) {
  std::string s = "Host: h\r\n";
  while (s.size() < bytes) {
    std::size_t left = bytes - s.size();
    if (left >= 1000) {
      s += "X-Pad: " + std::string(1000 - 9, 'p') + "\r\n";
    } else {
      REQUIRE(left >= 5);
      s += "X:" + std::string(left - 4, 'p') + "\r\n";
    }
  }
  REQUIRE(s.size() == bytes);
  return s;
}

}  // namespace

TEST_CASE("request line: 8192 bytes is fine, 8193 is 414") {
  CHECK(outcome(request_line(8192) + "\r\nHost: h\r\n\r\n") == 0);
  CHECK(outcome(request_line(8193) + "\r\nHost: h\r\n\r\n") == 414);
  // Known before the line ends: 8194 bytes without the CRLF.
  std::string partial = request_line(9000).substr(0, 8194);
  CHECK(outcome(partial) == 414);
  CHECK(outcome(partial.substr(0, 8193)) == -2);
  // A line of 8192 with only its CR so far still waits.
  CHECK(outcome(request_line(8192) + "\r") == -2);
  // Empty lines before the request do not count against it.
  CHECK(outcome("\r\n" + request_line(8192) + "\r\nHost: h\r\n\r\n") == 0);
  // Configurable.
  ParserOptions o;
  o.max_request_line = 20;
  CHECK(outcome(request_line(20) + "\r\nHost: h\r\n\r\n", o) == 0);
  CHECK(outcome(request_line(21) + "\r\nHost: h\r\n\r\n", o) == 414);
}

TEST_CASE("header section: 65536 bytes is fine, 65537 is 431") {
  const std::string line = "GET / HTTP/1.1\r\n";
  CHECK(outcome(line + header_section(65536) + "\r\n") == 0);
  CHECK(outcome(line + header_section(65537) + "\r\n") == 431);
  // Without the final empty line yet: at the limit it waits, past it it fails.
  CHECK(outcome(line + header_section(65536)) == -2);
  CHECK(outcome(line + header_section(65536) + "\r") == -2);
  // Past it, the first byte beyond the clipped view decides.
  CHECK(outcome(line + header_section(65537) + "\r") == 431);
  // A single huge field, still arriving.
  CHECK(outcome(line + "Host: h\r\nX: " + std::string(70000, 'x')) == 431);
  ParserOptions o;
  o.max_header_bytes = 100;
  CHECK(outcome(line + header_section(100) + "\r\n", o) == 0);
  CHECK(outcome(line + header_section(101) + "\r\n", o) == 431);
}

TEST_CASE("field count: 100 is fine, 101 is 431") {
  auto fields = [](int n) {
    std::string s = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 1; i < n; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
    return s;
  };
  CHECK(outcome(fields(100) + "\r\n") == 0);
  OneParse r = parse_one(fields(100) + "\r\n");
  CHECK(r.request.num_headers == 100);
  CHECK(outcome(fields(101) + "\r\n") == 431);
  CHECK(outcome(fields(100) + "X") == 431);  // the 101st line has begun
  CHECK(outcome(fields(100)) == -2);
  ParserOptions o;
  o.max_headers = 3;
  CHECK(outcome(fields(3) + "\r\n", o) == 0);
  CHECK(outcome(fields(4) + "\r\n", o) == 431);
}

TEST_CASE("Content-Length body: at the limit is fine, one past is 413 at once") {
  ParserOptions o;
  o.max_body = 16;
  std::string at = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n";
  CHECK(outcome(at, o) == -2);
  CHECK(outcome(at + std::string(16, 'b'), o) == 0);
  std::string over = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n";
  CHECK(outcome(over, o) == 413);
  OneParse r = parse_one(over, o);
  CHECK(r.result.close_after);
  // Default: 1 MiB.
  CHECK(outcome("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n") == -2);
  CHECK(outcome("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n") == 413);
}

TEST_CASE("trailer section: same limits as headers") {
  std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  ParserOptions o;
  o.max_header_bytes = 100;
  o.max_headers = 2;
  CHECK(outcome(head + "A: " + std::string(95, 't') + "\r\n\r\n", o) == 0);  // 100 bytes
  CHECK(outcome(head + "A: " + std::string(96, 't') + "\r\n\r\n", o) == 431);
  CHECK(outcome(head + "A: 1\r\nB: 2\r\n\r\n", o) == 0);
  CHECK(outcome(head + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", o) == 431);
}

TEST_CASE("chunk framing counts against the limits: extensions cannot buffer without bound") {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  ParserOptions o;
  o.max_body = 1000;
  o.max_header_bytes = 200;
  // 1-byte chunks with 40-byte extensions: 48 framing bytes per data byte ("1;" + 40 +
  // CRLF, then the CRLF after the data byte). Four chunks of framing (192 bytes) are
  // fine; the fifth passes 200 and is 413, whatever the decoded size is.
  auto chunks = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "1;" + std::string(40, 'e') + "\r\nx\r\n";
    return s;
  };
  CHECK(outcome(head + chunks(4) + "0\r\n\r\n", o) == 0);
  CHECK(outcome(head + chunks(4), o) == -2);
  CHECK(outcome(head + chunks(5), o) == 413);
  // The attack that used to buffer gigabytes: 1-byte chunks with 4,000-byte extensions,
  // under the default limits, is refused within the first 17 chunks (~68 KB).
  std::string attack = head;
  for (int i = 0; i < 17; ++i) attack += "1;" + std::string(4000, 'e') + "\r\nx\r\n";
  CHECK(outcome(attack) == 413);
  // Ordinary chunk sizes are nowhere near the framing limit: 1 MiB in 4 KiB chunks.
  std::string big = head;
  for (int i = 0; i < 256; ++i) big += "1000\r\n" + std::string(4096, 'b') + "\r\n";
  CHECK(outcome(big + "0\r\n\r\n") == 0);
}
