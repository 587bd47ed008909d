// tests/http/http_test_util.h -- helpers shared by the HTTP test files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/http/parser.h"
#include "tests/http/request_fingerprint.h"

namespace pp::http::testing {

/// scalar, then each SIMD path this CPU can run.
inline std::vector<Path> all_paths() {
  std::vector<Path> paths{Path::scalar};
  if (path_supported(Path::sse42)) paths.push_back(Path::sse42);
  if (path_supported(Path::avx2)) paths.push_back(Path::avx2);
  return paths;
}

inline ParserOptions with_path(ParserOptions o, Path p) {
  o.path = p;
  return o;
}

/// Parses one request from `input` with a fresh parser. It keeps the parser: a
/// chunked body and the trailers live in the parser's storage. Not movable (moving
/// a short std::string would move the bytes the views point at); `parse_one`
/// returns it by guaranteed copy elision.
struct OneParse {
  OneParse(std::string_view input, const ParserOptions& options) : parser(options) {
    result = parser.parse(input, request);
  }
  OneParse(const OneParse&) = delete;
  OneParse& operator=(const OneParse&) = delete;
  RequestParser parser;
  ParseResult result;
  Request request;
};
inline OneParse parse_one(std::string_view input, const ParserOptions& options = {}) {
  return OneParse(input, options);
}

/// Parses every pipelined request in `input`: the fingerprints of each complete
/// request, then "incomplete" or the error that stopped it (nothing when the input
/// ends exactly after a request).
inline std::vector<std::string> parse_all(std::string_view input, const ParserOptions& options) {
  std::vector<std::string> out;
  RequestParser parser(options);
  Request req;
  while (!input.empty()) {
    ParseResult r = parser.parse(input, req);
    out.push_back(fingerprint(r, req));
    if (r.status != ParseStatus::complete) break;
    input.remove_prefix(r.consumed);
  }
  return out;
}

/// A connection's receive buffer: bytes arrive in pieces; after each piece the
/// parser runs over the unconsumed bytes until it needs more. The buffer is a
/// std::string, so it moves as it grows -- views must not outlive a parse.
class FeedSimulator {
 public:
  explicit FeedSimulator(const ParserOptions& options) : parser_(options) {}
  void feed(std::string_view piece) {
    if (stopped_) return;
    buffer_.append(piece);
    for (;;) {
      std::string_view rest(buffer_);
      rest.remove_prefix(consumed_);
      if (rest.empty()) return;
      ParseResult r = parser_.parse(rest, req_);
      if (r.status == ParseStatus::incomplete) return;
      results_.push_back(fingerprint(r, req_));
      if (r.status == ParseStatus::error) {
        stopped_ = true;
        return;
      }
      consumed_ += r.consumed;
    }
  }
  /// What `parse_all` would report: the results, plus "incomplete" when bytes are
  /// left over without an error.
  std::vector<std::string> finish() const {
    std::vector<std::string> out = results_;
    if (!stopped_ && consumed_ < buffer_.size()) out.push_back("incomplete");
    return out;
  }

 private:
  RequestParser parser_;
  Request req_;
  std::string buffer_;
  std::size_t consumed_ = 0;
  bool stopped_ = false;
  std::vector<std::string> results_;
};

}  // namespace pp::http::testing
