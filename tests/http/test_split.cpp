// Requests split across reads at any byte parse exactly as when whole, on every
// scanning path: the restart-from-the-start contract of RequestParser::parse.
#include <doctest/doctest.h>

#include "tests/http/http_test_util.h"
#include "tests/http/split_corpus.h"

using namespace pp::http;
using namespace pp::http::testing;

TEST_CASE("every path parses every corpus input like the scalar path") {
  for (const std::string& in : split_corpus()) {
    CAPTURE(in);
    std::vector<std::string> want = parse_all(in, with_path({}, Path::scalar));
    REQUIRE(!want.empty());
    for (Path p : all_paths()) {
      CAPTURE(path_name(p));
      CHECK(parse_all(in, with_path({}, p)) == want);
    }
  }
}

TEST_CASE("the corpus covers complete requests, chunked bodies and errors") {
  std::vector<std::string> all = split_corpus();
  std::vector<std::string> first = parse_all(all[0], {});
  REQUIRE(first.size() == 3);
  CHECK(first[2].find("close=1") != std::string::npos);
  std::vector<std::string> chunked = parse_all(all[2], {});
  REQUIRE(chunked.size() == 2);
  CHECK(chunked[0].find("body=hello world0123456789|") != std::string::npos);
  CHECK(chunked[0].find("T:X-Trailer=yes|T:X-Sum=42|") != std::string::npos);
  std::vector<std::string> bad = parse_all(all[6], {});
  REQUIRE(bad.size() == 2);
  CHECK(bad[1].rfind("error 400", 0) == 0);
}

TEST_CASE("split at every byte boundary: prefix first, then the whole") {
  for (const std::string& in : split_corpus()) {
    CAPTURE(in);
    std::vector<std::string> want = parse_all(in, with_path({}, Path::scalar));
    for (Path p : all_paths()) {
      CAPTURE(path_name(p));
      for (std::size_t cut = 0; cut <= in.size(); ++cut) {
        CAPTURE(cut);
        FeedSimulator conn(with_path({}, p));
        conn.feed(std::string_view(in).substr(0, cut));
        conn.feed(std::string_view(in).substr(cut));
        REQUIRE(conn.finish() == want);
      }
    }
  }
}

TEST_CASE("one byte at a time: the chunked decoder resumes across many reads") {
  for (const std::string& in : split_corpus()) {
    CAPTURE(in);
    std::vector<std::string> want = parse_all(in, with_path({}, Path::scalar));
    for (Path p : all_paths()) {
      CAPTURE(path_name(p));
      FeedSimulator conn(with_path({}, p));
      for (char c : in) conn.feed(std::string_view(&c, 1));
      REQUIRE(conn.finish() == want);
    }
  }
}

TEST_CASE("a parse that stops before a boundary never reports a different request") {
  // Prefixes of a request are "incomplete" (or the same error); never a shorter
  // complete request.
  for (const std::string& in : split_corpus()) {
    std::vector<std::string> want = parse_all(in, {});
    for (std::size_t cut = 0; cut < in.size(); ++cut) {
      OneParse part = parse_one(std::string_view(in).substr(0, cut));
      if (part.result.status == ParseStatus::incomplete) continue;
      CAPTURE(in);
      CAPTURE(cut);
      CHECK(fingerprint(part.result, part.request) == want[0]);
    }
  }
}
