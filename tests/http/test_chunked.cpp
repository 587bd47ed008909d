// Chunked request bodies: decoding, extensions, trailers, errors, and resuming a
// partly received body in a buffer that moved.
#include <doctest/doctest.h>

#include "tests/http/http_test_util.h"

using namespace pp::http;
using namespace pp::http::testing;

namespace {

const std::string kHead = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

int chunked_status(const std::string& body, const ParserOptions& options = {}) {
  int first = -1;
  for (Path p : all_paths()) {
    OneParse r = parse_one(kHead + body, with_path(options, p));
    int s = r.result.status == ParseStatus::error        ? r.result.error_status
            : r.result.status == ParseStatus::incomplete ? -2
                                                         : 0;
    if (first == -1) first = s;
    CHECK_MESSAGE(s == first, path_name(p));
  }
  return first;
}

}  // namespace

TEST_CASE("chunked bodies decode into the parser's storage") {
  std::string in = kHead + "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nNEXT";
  for (Path p : all_paths()) {
    OneParse r = parse_one(in, with_path({}, p));
    REQUIRE(r.result.status == ParseStatus::complete);
    CHECK(r.request.chunked);
    CHECK(r.request.body == "Wikipedia in\r\n\r\nchunks.");
    CHECK(r.result.consumed == in.size() - 4);
    CHECK(r.request.trailers.empty());
  }
}

TEST_CASE("chunk extensions: tokens, quoted strings, BWS") {
  const char* ok[] = {
      "3;a\r\nabc\r\n0\r\n\r\n",
      "3;a=b\r\nabc\r\n0\r\n\r\n",
      "3 ; a = b ;c\r\nabc\r\n0;last=\"yes\"\r\n\r\n",
      "3;a=\"q \\\"x\\\" ;=\"\r\nabc\r\n0\r\n\r\n",
      "3;a=\"\"\r\nabc\r\n0\r\n\r\n",
      "0003\r\nabc\r\n00\r\n\r\n",
      "3\r\nabc\r\n0\r\n\r\n",
      "a\r\n0123456789\r\n0\r\n\r\n",
      "A\r\n0123456789\r\n0\r\n\r\n",
  };
  for (const char* body : ok) {
    CAPTURE(body);
    CHECK(chunked_status(body) == 0);
  }
  const char* bad[] = {
      "3;\r\nabc\r\n0\r\n\r\n",          // no extension name
      "3;=b\r\nabc\r\n0\r\n\r\n",        // no extension name
      "3;a=\r\nabc\r\n0\r\n\r\n",        // no value
      "3;a=\"x\r\nabc\r\n0\r\n\r\n",     // unterminated quote
      "3;a b\r\nabc\r\n0\r\n\r\n",       // two names
      "3x\r\nabc\r\n0\r\n\r\n",          // junk after size
      "3 \r\nabc\r\n0\r\n\r\n",          // trailing whitespace, no extension
      "-3\r\nabc\r\n0\r\n\r\n",          // sign
      "0x3\r\nabc\r\n0\r\n\r\n",         // 0x prefix
      "\r\nabc\r\n0\r\n\r\n",            // no size
      "3\nabc\r\n0\r\n\r\n",             // bare LF after size
      "3\r\nabcd\r\n0\r\n\r\n",          // data longer than size
      "3\r\nabc\n0\r\n\r\n",             // bare LF after data
      "3\r\nabc\rX0\r\n\r\n",            // bare CR after data
      "3\r\nabc\r\n0\r\n\n",             // bare LF ends trailers
      "3\r\nabc\r\n0\r\nX : y\r\n\r\n",  // bad trailer
      "3\r\nabc\r\n0\r\n y\r\n\r\n",     // folded trailer
  };
  for (const char* body : bad) {
    CAPTURE(body);
    CHECK(chunked_status(body) == 400);
  }
}

TEST_CASE("trailers are parsed, kept apart from the headers, and exposed") {
  std::string in = kHead + "1\r\nx\r\n0\r\nX-Checksum: abc \r\nX-Empty:\r\n\r\n";
  OneParse r = parse_one(in);
  REQUIRE(r.result.status == ParseStatus::complete);
  REQUIRE(r.request.trailers.size() == 2);
  CHECK(r.request.trailers[0].name == "X-Checksum");
  CHECK(r.request.trailers[0].value == "abc");
  CHECK(r.request.trailers[1].value.empty());
  CHECK_FALSE(r.request.has_header("X-Checksum"));
}

TEST_CASE("a chunked body resumes where it stopped, even when the buffer moved") {
  std::string in = kHead + "5\r\nhello\r\n7;e=1\r\n, world\r\n0\r\nT: 1\r\n\r\n";
  RequestParser parser;
  Request req;
  // Feed through buffers that are re-allocated each time (different addresses).
  for (std::size_t n = 1; n < in.size(); ++n) {
    std::string copy = in.substr(0, n);
    ParseResult r = parser.parse(copy, req);
    REQUIRE(r.status == ParseStatus::incomplete);
  }
  std::string copy = in;
  ParseResult r = parser.parse(copy, req);
  REQUIRE(r.status == ParseStatus::complete);
  CHECK(req.body == "hello, world");
  REQUIRE(req.trailers.size() == 1);
  CHECK(req.trailers[0].name == "T");
  CHECK(req.trailers[0].name.data() >= copy.data());
  CHECK(req.trailers[0].name.data() < copy.data() + copy.size());
}

TEST_CASE("reset() forgets a partial chunked body") {
  RequestParser parser;
  Request req;
  std::string a = kHead + "5\r\nhel";
  CHECK(parser.parse(a, req).status == ParseStatus::incomplete);
  parser.reset();
  std::string b = kHead + "2\r\nok\r\n0\r\n\r\n";
  REQUIRE(parser.parse(b, req).status == ParseStatus::complete);
  CHECK(req.body == "ok");
}

TEST_CASE("a chunked body over the limit is 413, counted after decoding") {
  ParserOptions small;
  small.max_body = 10;
  CHECK(chunked_status("5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", small) == 0);
  CHECK(chunked_status("5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n", small) == 413);
  CHECK(chunked_status("b\r\n", small) == 413);            // known as soon as the size line ends
  CHECK(chunked_status("a\r\n", small) == -2);             // exactly the limit: wait for data
  CHECK(chunked_status("ffffffffffffffffff\r\n") == 413);  // overflow
  OneParse r = parse_one(kHead + "b\r\n", small);
  CHECK(r.result.close_after);
}

TEST_CASE("chunk-size lines are bounded") {
  std::string ext = "1;" + std::string(4090, 'e') + "\r\nx\r\n0\r\n\r\n";  // 4092-byte line
  CHECK(chunked_status(ext) == 0);
  std::string at = "1;" + std::string(4094, 'e') + "\r\nx\r\n0\r\n\r\n";  // 4096: the limit
  CHECK(chunked_status(at) == 0);
  std::string over = "1;" + std::string(4095, 'e') + "\r\nx\r\n0\r\n\r\n";
  CHECK(chunked_status(over) == 400);
  std::string partial = "1;" + std::string(5000, 'e');  // no CRLF yet, already too long
  CHECK(chunked_status(partial) == 400);
}
