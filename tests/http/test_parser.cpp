// Request parser: request line, fields, keep-alive, framing and the status for
// each kind of bad request -- on every scanning path this CPU has.
#include <doctest/doctest.h>

#include <deque>
#include <string>

#include "tests/http/http_test_util.h"

using namespace pp::http;
using namespace pp::http::testing;

namespace {

// The error status each path gives `input` (0 when it is not an error); CHECKs
// that all paths agree and that errors always close.
int status_of(std::string_view input, const ParserOptions& options = {}) {
  int first = -1;
  for (Path p : all_paths()) {
    OneParse r = parse_one(input, with_path(options, p));
    int status = r.result.status == ParseStatus::error ? r.result.error_status : 0;
    if (r.result.status == ParseStatus::error) CHECK(r.result.close_after);
    if (first == -1) first = status;
    CHECK_MESSAGE(status == first, "path ", path_name(p), " on ", input);
  }
  return first;
}

}  // namespace

TEST_CASE("a simple GET parses into views of the input") {
  std::string in =
      "GET /hello/world?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
  for (Path p : all_paths()) {
    CAPTURE(path_name(p));
    OneParse r = parse_one(in, with_path({}, p));
    REQUIRE(r.result.status == ParseStatus::complete);
    CHECK(r.result.consumed == in.size());
    CHECK_FALSE(r.result.close_after);
    const Request& q = r.request;
    CHECK(q.method == "GET");
    CHECK(q.target == "/hello/world?x=1&y=2");
    CHECK(q.path == "/hello/world");
    CHECK(q.query == "x=1&y=2");
    CHECK(q.minor_version == 1);
    CHECK(q.keep_alive);
    CHECK_FALSE(q.chunked);
    CHECK(q.body.empty());
    REQUIRE(q.num_headers == 2);
    CHECK(q.headers[0].name == "Host");
    CHECK(q.headers[0].value == "example.com");
    CHECK(q.header("host") == "example.com");
    CHECK(q.header("USER-AGENT") == "t");
    CHECK(q.has_header("user-agent"));
    CHECK_FALSE(q.has_header("accept"));
    CHECK(q.method.data() == in.data());
  }
}

TEST_CASE("field values lose surrounding whitespace, keep inner whitespace and obs-text") {
  std::string in =
      "GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a  b \t\r\nX-Empty:\r\nX-Sp:   \r\n"
      "X-Utf8: caf\xc3\xa9\r\n\r\n";
  OneParse r = parse_one(in);
  REQUIRE(r.result.status == ParseStatus::complete);
  CHECK(r.request.header("host") == "h");
  CHECK(r.request.header("x-a") == "a  b");
  CHECK(r.request.header("x-empty").empty());
  CHECK(r.request.has_header("x-empty"));
  CHECK(r.request.header("x-sp").empty());
  CHECK(r.request.header("x-utf8") == "caf\xc3\xa9");
}

TEST_CASE("request-target forms: origin, absolute, authority, asterisk") {
  std::deque<std::string> inputs;  // the views point into these
  auto parse_target = [&](std::string line) {
    return parse_one(inputs.emplace_back(line + " HTTP/1.1\r\nHost: h\r\n\r\n"));
  };
  OneParse a = parse_target("GET http://example.com:8080/p/q?z=9");
  REQUIRE(a.result.status == ParseStatus::complete);
  CHECK(a.request.path == "/p/q");
  CHECK(a.request.query == "z=9");
  OneParse b = parse_target("GET http://example.com");
  REQUIRE(b.result.status == ParseStatus::complete);
  CHECK(b.request.path == "/");
  CHECK(b.request.query.empty());
  OneParse b2 = parse_target("GET http://example.com?k");
  REQUIRE(b2.result.status == ParseStatus::complete);
  CHECK(b2.request.path == "/");
  CHECK(b2.request.query == "k");
  OneParse c = parse_target("CONNECT example.com:443");
  REQUIRE(c.result.status == ParseStatus::complete);
  CHECK(c.request.target == "example.com:443");
  CHECK(c.request.path.empty());
  OneParse d = parse_target("OPTIONS *");
  REQUIRE(d.result.status == ParseStatus::complete);
  CHECK(d.request.path == "*");
  OneParse e = parse_target("GET /?");
  REQUIRE(e.result.status == ParseStatus::complete);
  CHECK(e.request.path == "/");
  CHECK(e.request.query.empty());
  OneParse f = parse_target("PURGE /a?b?c");
  REQUIRE(f.result.status == ParseStatus::complete);
  CHECK(f.request.method == "PURGE");
  CHECK(f.request.query == "b?c");
}

TEST_CASE("keep-alive follows the version and the Connection header") {
  struct Case {
    const char* version;
    const char* connection;  // nullptr: no header
    bool keep_alive;
  };
  const Case cases[] = {
      {"1.1", nullptr, true},
      {"1.1", "close", false},
      {"1.1", "Close", false},
      {"1.1", "keep-alive", true},
      {"1.1", "Upgrade, close", false},
      {"1.1", "keep-alive, close", false},
      {"1.1", "closed", true},
      {"1.0", nullptr, false},
      {"1.0", "keep-alive", true},
      {"1.0", "Keep-Alive", true},
      {"1.0", " foo ,keep-alive ", true},
      {"1.0", "close", false},
      {"1.0", "keep-alive, close", false},
  };
  for (const Case& c : cases) {
    std::string in = std::string("GET / HTTP/") + c.version + "\r\nHost: h\r\n";
    if (c.connection) in += std::string("Connection: ") + c.connection + "\r\n";
    in += "\r\n";
    CAPTURE(in);
    for (Path p : all_paths()) {
      OneParse r = parse_one(in, with_path({}, p));
      REQUIRE(r.result.status == ParseStatus::complete);
      CHECK(r.request.keep_alive == c.keep_alive);
      CHECK(r.result.close_after == !c.keep_alive);
    }
  }
  // Two Connection lines combine.
  OneParse r = parse_one("GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n");
  CHECK_FALSE(r.request.keep_alive);
}

TEST_CASE("HTTP/1.0 needs no Host; HTTP/1.1 needs exactly one") {
  CHECK(status_of("GET / HTTP/1.0\r\n\r\n") == 0);
  CHECK(status_of("GET / HTTP/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nHost:\r\n\r\n") == 0);  // empty Host is valid (RFC 9112 3.2)
}

TEST_CASE("a Host value must be uri-host [':' port] (RFC 9112 3.2, RFC 3986 3.2.2)") {
  for (const char* ok : {"example.com", "example.com:8080", "127.0.0.1:80", "[::1]:8080",
                         "a-b_c~d.e", "xn--bcher-kva.example", "h%41st"})
    CHECK_MESSAGE(status_of(std::string("GET / HTTP/1.1\r\nHost: ") + ok + "\r\n\r\n") == 0, ok);
  for (const char* bad : {"a b", "evil.com/path", "user@host", "a\\b", "a\"b", "<x>", "a{b}"})
    CHECK_MESSAGE(status_of(std::string("GET / HTTP/1.1\r\nHost: ") + bad + "\r\n\r\n") == 400,
                  bad);
}

TEST_CASE("Content-Length bodies") {
  std::string in = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET";
  OneParse r = parse_one(in);
  REQUIRE(r.result.status == ParseStatus::complete);
  CHECK(r.request.body == "hello");
  CHECK(r.result.consumed == in.size() - 3);
  // Not all of it yet.
  CHECK(parse_one(in.substr(0, in.size() - 5)).result.status == ParseStatus::incomplete);
  // Identical duplicates are one length; leading zeros are digits.
  OneParse d = parse_one(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc");
  REQUIRE(d.result.status == ParseStatus::complete);
  CHECK(d.request.body == "abc");
  OneParse l = parse_one("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nab");
  REQUIRE(l.result.status == ParseStatus::complete);
  CHECK(l.request.body == "ab");
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n") == 0);
}

TEST_CASE("framing that could smuggle a request is 400 and closes") {
  const char* cases[] = {
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3,\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
      "chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  };
  for (const char* in : cases) {
    CAPTURE(in);
    CHECK(status_of(in) == 400);
  }
}

TEST_CASE("transfer codings other than a final chunked are 501") {
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n") == 501);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == 501);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n") == 501);
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n") == 501);
  // Case-insensitive, list whitespace and empty elements are fine.
  CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , CHUNKED \r\n\r\n0\r\n\r\n") ==
        0);
}

TEST_CASE("HTTP versions: 1.0 and 1.1 only; other well-formed versions are 505") {
  CHECK(status_of("GET / HTTP/1.0\r\n\r\n") == 0);
  CHECK(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/0.9\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/3.0\r\n\r\n") == 505);
  CHECK(status_of("GET / HTTP/1.10\r\n\r\n") == 400);
  CHECK(status_of("GET / http/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.x\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/11\r\n\r\n") == 400);
  CHECK(status_of("GET /\r\n\r\n") == 400);  // HTTP/0.9 simple request
}

TEST_CASE("malformed request lines and fields are 400") {
  const char* cases[] = {
      "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",                     // double SP
      "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",                     // trailing SP
      " GET / HTTP/1.1\r\nHost: h\r\n\r\n",                     // leading SP
      "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",                      // non-token method
      "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",                     // HTAB separator
      "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",                   // SP in target
      "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",                  // DEL in target
      "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",              // raw non-ASCII in target
      "GET / HTTP/1.1\nHost: h\r\n\r\n",                        // bare LF ends request line
      "GET / HTTP/1.1\rHost: h\r\n\r\n",                        // bare CR
      "GET / HTTP/1.1\r\nHost: h\n\r\n",                        // bare LF ends a field
      "GET / HTTP/1.1\r\nHost: h\r\n\n",                        // bare LF ends the section
      "GET / HTTP/1.1\r\nHost: h\r\n\rX",                       // CR not followed by LF
      "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",      // obs-fold (SP)
      "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n",     // obs-fold (HTAB)
      "GET / HTTP/1.1\r\n Host: h\r\n\r\n",                     // whitespace before first field
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",                     // SP before colon
      "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",                    // HTAB before colon
      "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",               // empty name
      "GET / HTTP/1.1\r\nHost: h\r\nX(Y: v\r\n\r\n",            // non-token name
      "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",           // no colon
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",         // control in value
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n",          // DEL in value
      "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",  // five empty lines
      "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",                    // bare LF before request
  };
  for (const char* in : cases) {
    CAPTURE(in);
    CHECK(status_of(in) == 400);
  }
  std::string nul("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 36);
  CHECK(status_of(nul) == 400);
}

TEST_CASE("up to four empty lines before a request are skipped and consumed") {
  std::string in = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  OneParse r = parse_one(in);
  REQUIRE(r.result.status == ParseStatus::complete);
  CHECK(r.result.consumed == in.size());
  CHECK(r.request.method == "GET");
  CHECK(parse_one("\r\n").result.status == ParseStatus::incomplete);
  CHECK(parse_one("\r").result.status == ParseStatus::incomplete);
  CHECK(parse_one("").result.status == ParseStatus::incomplete);
}

TEST_CASE("pipelined requests parse one after another") {
  std::string in =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
      "GET /c HTTP/1.0\r\n\r\n"
      "GET /d HTTP/1.1\r\nHo";
  for (Path p : all_paths()) {
    std::vector<std::string> got = parse_all(in, with_path({}, p));
    REQUIRE(got.size() == 4);
    CHECK(got[0].find("target=/a|") != std::string::npos);
    CHECK(got[1].find("body=hi|") != std::string::npos);
    CHECK(got[2].find("keep=0") != std::string::npos);
    CHECK(got[3] == "incomplete");
  }
}

TEST_CASE("errors carry a reason; the parser is reusable after an error") {
  RequestParser parser;
  Request req;
  ParseResult bad = parser.parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n", req);
  REQUIRE(bad.status == ParseStatus::error);
  CHECK(bad.reason == "whitespace before colon");
  ParseResult good = parser.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", req);
  CHECK(good.status == ParseStatus::complete);
}

TEST_CASE("incomplete bodies report a complete head (for Expect: 100-continue)") {
  RequestParser parser;
  Request req;
  const std::string head =
      "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
  ParseResult r = parser.parse(head, req);
  CHECK(r.status == ParseStatus::incomplete);
  CHECK(r.head_complete);
  CHECK(ascii_iequals(req.header("expect"), "100-continue"));
  CHECK(req.path == "/up");
  r = parser.parse(head.substr(0, head.size() - 2), req);  // the head itself is unfinished
  CHECK(r.status == ParseStatus::incomplete);
  CHECK_FALSE(r.head_complete);
  const std::string chunked =
      "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
  r = parser.parse(chunked, req);
  CHECK(r.status == ParseStatus::incomplete);
  CHECK(r.head_complete);
  r = parser.parse(head + "hello", req);
  CHECK(r.status == ParseStatus::complete);
  CHECK_FALSE(r.head_complete);
}
