// libFuzzer target for the HTTP/1.1 request parser.
//
// Beyond crashes (ASan, UBSan), it checks the parser's promises and aborts when one
// breaks: every SIMD path gives the scalar path's results, request by request; the
// input split at one byte boundary (taken from the input) gives the same results;
// every view lies inside the input (or the parser's body storage). The Range parser
// gets the same bytes and must return a range inside the file.
//
// Input layout: byte 0 picks small or default limits, byte 1 picks the split
// point; the rest is the stream.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/http/parser.h"
#include "core/http/range.h"
#include "tests/http/http_test_util.h"

using namespace pp::http;
using namespace pp::http::testing;

namespace {

[[noreturn]] void mismatch(const char* what, const std::vector<std::string>& a,
                           const std::vector<std::string>& b) {
  std::fprintf(stderr, "MISMATCH: %s\n", what);
  for (std::size_t i = 0; i < a.size() || i < b.size(); ++i) {
    std::fprintf(stderr, "  [%zu] %s\n      %s\n", i, i < a.size() ? a[i].c_str() : "-",
                 i < b.size() ? b[i].c_str() : "-");
  }
  std::abort();
}

bool inside(std::string_view v, std::string_view buf) {
  return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

// Parses the stream with one path, checking views; returns the fingerprints.
std::vector<std::string> parse_checked(std::string_view input, const ParserOptions& options) {
  std::vector<std::string> out;
  RequestParser parser(options);
  Request req;
  while (!input.empty()) {
    ParseResult r = parser.parse(input, req);
    out.push_back(fingerprint(r, req));
    if (r.status != ParseStatus::complete) break;
    if (r.consumed == 0 || r.consumed > input.size()) std::abort();
    std::string_view whole = input.substr(0, r.consumed);
    bool ok = inside(req.method, whole) && inside(req.target, whole) &&
              (req.path == "/" || inside(req.path, whole)) && inside(req.query, whole) &&
              (req.chunked || inside(req.body, whole));
    for (const Header& h : req.fields()) ok = ok && inside(h.name, whole) && inside(h.value, whole);
    for (const Header& h : req.trailers) ok = ok && inside(h.name, whole) && inside(h.value, whole);
    if (!ok) {
      std::fprintf(stderr, "view outside the request: %s\n", out.back().c_str());
      std::abort();
    }
    input.remove_prefix(r.consumed);
  }
  return out;
}

void check_range(std::string_view value, std::uint64_t size) {
  ByteRange r = parse_range(value, size);
  if (r.outcome == RangeOutcome::partial &&
      (r.length == 0 || r.offset >= size || r.length > size - r.offset)) {
    std::fprintf(stderr, "bad range %llu+%llu of %llu\n", static_cast<unsigned long long>(r.offset),
                 static_cast<unsigned long long>(r.length), static_cast<unsigned long long>(size));
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t cut_byte = data[1];
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  ParserOptions options;
  if (mode & 1) options.max_body = 16;
  if (mode & 2) options.max_headers = 3;
  if (mode & 4) options.max_header_bytes = 64;
  if (mode & 8) options.max_request_line = 32;

  const std::vector<std::string> want = parse_checked(input, with_path(options, Path::scalar));
  for (Path p : all_paths()) {
    if (p == Path::scalar) continue;
    std::vector<std::string> got = parse_checked(input, with_path(options, p));
    if (got != want) mismatch(path_name(p).data(), want, got);
  }

  // One split: prefix, then the rest, through one parser (exercises resuming).
  const std::size_t cut = input.empty() ? 0 : cut_byte * input.size() / 255;
  const Path split_path = all_paths()[cut_byte % all_paths().size()];
  FeedSimulator conn(with_path(options, split_path));
  conn.feed(input.substr(0, cut));
  conn.feed(input.substr(cut));
  std::vector<std::string> split = conn.finish();
  if (split != want) mismatch("split", want, split);

  check_range(input, cut_byte);
  check_range(input, static_cast<std::uint64_t>(mode) << 40);
  return 0;
}
