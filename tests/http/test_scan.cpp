// The byte scans: every SIMD path stops where the scalar tables say, for every byte
// value at every offset; and the path-selection API.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "core/http/scan.h"
#include "tests/http/http_test_util.h"

using namespace pp::http;
using namespace pp::http::testing;

namespace {

using ScanFn = const char* (*)(const char*, const char*);

struct Scans {
  Path path;
  ScanFn token, target, value;
};

std::vector<Scans> simd_scans() {
  std::vector<Scans> s;
  if (path_supported(Path::sse42))
    s.push_back({Path::sse42, detail::sse42_scan_token, detail::sse42_scan_target,
                 detail::sse42_scan_value});
  if (path_supported(Path::avx2))
    s.push_back(
        {Path::avx2, detail::avx2_scan_token, detail::avx2_scan_target, detail::avx2_scan_value});
  return s;
}

}  // namespace

TEST_CASE("scans: each byte value at each offset of a 100-byte run") {
  struct Class {
    const char* name;
    char filler;
    ScanFn scalar;
  };
  const Class classes[] = {{"token", 'a', detail::ScalarScan::token},
                           {"target", '/', detail::ScalarScan::target},
                           {"value", ' ', detail::ScalarScan::value}};
  for (const Scans& s : simd_scans()) {
    CAPTURE(path_name(s.path));
    const ScanFn fast[] = {s.token, s.target, s.value};
    for (int k = 0; k < 3; ++k) {
      CAPTURE(classes[k].name);
      std::string buf(100, classes[k].filler);
      for (int b = 0; b < 256; ++b) {
        for (std::size_t at = 0; at < buf.size(); ++at) {
          buf[at] = static_cast<char>(b);
          for (std::size_t start : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
            for (std::size_t len : {buf.size() - start, at + 1 > start ? at + 1 - start : 0}) {
              const char* p = buf.data() + start;
              const char* e = p + len;
              if (classes[k].scalar(p, e) != fast[k](p, e)) {
                FAIL("byte ", b, " at ", at, " start ", start, " len ", len);
              }
            }
          }
          buf[at] = classes[k].filler;
        }
      }
    }
  }
}

TEST_CASE("scans: random buffers") {
  std::mt19937 rng(12345);
  for (const Scans& s : simd_scans()) {
    for (int iter = 0; iter < 20000; ++iter) {
      std::string buf(rng() % 80, '\0');
      // Mostly members, a few strangers.
      for (char& c : buf) c = static_cast<char>(rng() % 8 == 0 ? rng() % 256 : 'a' + rng() % 26);
      const char* p = buf.data();
      const char* e = p + buf.size();
      REQUIRE(detail::ScalarScan::token(p, e) == s.token(p, e));
      REQUIRE(detail::ScalarScan::target(p, e) == s.target(p, e));
      REQUIRE(detail::ScalarScan::value(p, e) == s.value(p, e));
    }
  }
}

TEST_CASE("path selection") {
  CHECK(path_supported(Path::scalar));
  CHECK(path_supported(Path::automatic));
  CHECK(active_path() == best_path());
  CHECK(path_name(Path::avx2) == "avx2");
  CHECK(path_name(Path::sse42) == "sse4.2");
  Path p{};
  CHECK(parse_path_name("sse42", p));
  CHECK(p == Path::sse42);
  CHECK(parse_path_name("scalar", p));
  CHECK(p == Path::scalar);
  CHECK_FALSE(parse_path_name("neon", p));
  MESSAGE("best path on this CPU: ", path_name(best_path()));

  REQUIRE(set_parser_path(Path::scalar));
  CHECK(active_path() == Path::scalar);
  RequestParser follows;  // automatic: follows the process-wide default
  CHECK(follows.options().path == Path::automatic);
  Request r;
  CHECK(follows.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", r).status == ParseStatus::complete);
  REQUIRE(set_parser_path(Path::automatic));
  CHECK(active_path() == best_path());
  if (!path_supported(Path::avx2)) {
    CHECK_FALSE(set_parser_path(Path::avx2));
    ParserOptions o;
    o.path = Path::avx2;
    CHECK(RequestParser(o).options().path == Path::scalar);
  }
}
