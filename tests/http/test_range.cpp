// Range: bytes=... against a file size -> 200, 206 or 416.
#include <doctest/doctest.h>

#include "core/http/range.h"

using namespace pp::http;

namespace {

std::string show(const ByteRange& r) {
  switch (r.outcome) {
    case RangeOutcome::full:
      return "full";
    case RangeOutcome::unsatisfiable:
      return "416";
    case RangeOutcome::partial:
      return std::to_string(r.offset) + "+" + std::to_string(r.length);
  }
  return "?";
}

}  // namespace

TEST_CASE("single byte ranges") {
  CHECK(show(parse_range("bytes=0-99", 1000)) == "0+100");
  CHECK(show(parse_range("bytes=0-0", 1000)) == "0+1");
  CHECK(show(parse_range("bytes=999-999", 1000)) == "999+1");
  CHECK(show(parse_range("bytes=500-", 1000)) == "500+500");
  CHECK(show(parse_range("bytes=-100", 1000)) == "900+100");
  CHECK(show(parse_range("bytes=-1000", 1000)) == "0+1000");
  CHECK(show(parse_range("bytes=-5000", 1000)) == "0+1000");      // longer suffix: whole file
  CHECK(show(parse_range("bytes=900-5000", 1000)) == "900+100");  // last clipped
  CHECK(show(parse_range("BYTES=1-2", 1000)) == "1+2");
  CHECK(show(parse_range(" bytes=1-2 ", 1000)) == "1+2");
  CHECK(show(parse_range("bytes= 1-2", 1000)) == "1+2");
  CHECK(show(parse_range("bytes=0-18446744073709551615", 10)) == "0+10");
  CHECK(show(parse_range("bytes=0-99999999999999999999999", 10)) == "0+10");
}

TEST_CASE("unsatisfiable ranges are 416") {
  CHECK(show(parse_range("bytes=1000-", 1000)) == "416");
  CHECK(show(parse_range("bytes=1000-2000", 1000)) == "416");
  CHECK(show(parse_range("bytes=-0", 1000)) == "416");
  CHECK(show(parse_range("bytes=0-", 0)) == "416");
  CHECK(show(parse_range("bytes=0-0", 0)) == "416");
  CHECK(show(parse_range("bytes=99999999999999999999999-", 10)) == "416");
  CHECK(show(parse_range("bytes=2000-3000,5000-", 1000)) == "416");
}

TEST_CASE("invalid or foreign Range values are ignored: full 200") {
  const char* ignored[] = {"",          "bytes",       "bytes=",     "bytes=,",     "bytes=a-b",
                           "bytes=5-1", "bytes=1-2-3", "bytes=--1",  "bytes=1",     "items=0-1",
                           "bytes 0-1", "bytes=0x1-2", "bytes=1 -2", "bytes=0-1;x", "bytes=+1-2"};
  for (const char* v : ignored) {
    CAPTURE(v);
    CHECK(show(parse_range(v, 1000)) == "full");
  }
  // A non-zero suffix of an empty file is satisfiable but has no bytes: 200.
  CHECK(show(parse_range("bytes=-5", 0)) == "full");
}

TEST_CASE("several ranges are answered with the whole file") {
  CHECK(show(parse_range("bytes=0-1,5-9", 1000)) == "full");
  CHECK(show(parse_range("bytes=0-1, 2000-", 1000)) == "full");
  CHECK(show(parse_range("bytes=0-1,", 1000)) == "0+2");  // empty elements are ignored
}

TEST_CASE("Content-Range values") {
  CHECK(content_range(parse_range("bytes=0-99", 1000), 1000) == "bytes 0-99/1000");
  CHECK(content_range(parse_range("bytes=-1", 1000), 1000) == "bytes 999-999/1000");
}
