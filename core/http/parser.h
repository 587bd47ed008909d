// core/http/parser.h -- the HTTP/1.1 request parser (RFC 9112), SIMD-accelerated.
//
// Use one RequestParser per connection. Hand `parse` the connection's unconsumed
// bytes from the start of the next request (possibly several pipelined requests,
// possibly a partial one). It reports a complete request, "incomplete" (call again
// from the same start once more bytes have arrived: a request split at any byte
// parses identically), or an error carrying the status to answer with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/http/request.h"
#include "core/http/simd_path.h"

namespace pp::http {

/// Limits and choices for one parser. The defaults are the project's limits.
struct ParserOptions {
  /// Largest body (Content-Length, or decoded chunked size) accepted; 413 above. A
  /// chunked body's framing (size lines, extensions, CRLFs) may add `max_header_bytes`
  /// more (413 above that) and its trailers another `max_header_bytes` (431), so the
  /// bytes buffered for one request stay bounded.
  std::size_t max_body = 1024 * 1024;
  /// Longest request line, without its CRLF; 414 above.
  std::size_t max_request_line = 8 * 1024;
  /// Largest header section: the field lines with their CRLFs, without the empty
  /// line that ends the section; 431 above. Chunked trailers get the same limit.
  std::size_t max_header_bytes = 64 * 1024;
  /// Most field lines; 431 above. Values over kMaxHeaders count as kMaxHeaders.
  std::size_t max_headers = kMaxHeaders;
  /// Scanning path; `automatic` follows `set_parser_path` / the CPU.
  Path path = Path::automatic;
};

/// Parses requests from one connection's byte stream.
///
/// Syntax it enforces (RFC 9112 / RFC 9110): CRLF line ends (a bare CR or LF is
/// 400), single SP in the request line, `HTTP/1.0` or `HTTP/1.1` (any other
/// well-formed version is 505), token field names with no whitespace before the
/// colon, no obs-fold, no control bytes in values, exactly one Host in HTTP/1.1 (whose
/// value must be uri-host [":" port]),
/// at most four empty lines before a request. Bodies: Content-Length (identical
/// duplicates allowed), or Transfer-Encoding ending in a single `chunked` (other
/// codings are 501; TE with CL, or TE in HTTP/1.0, is 400).
class RequestParser {
 public:
  explicit RequestParser(const ParserOptions& options = {});

  /// Parses the request at the start of `input` into `out`. On `complete`, drop
  /// `consumed` bytes and call again for the next pipelined request. On
  /// `incomplete`, call again with the same bytes plus whatever arrives next (the
  /// buffer may move). A chunked body is decoded into the parser's storage and
  /// resumed across calls rather than decoded again.
  ParseResult parse(std::string_view input, Request& out);

  /// Forgets a partly decoded chunked body. Call it when the unconsumed bytes are
  /// discarded without a complete request (e.g. the connection is reused for a
  /// fresh stream); `complete` and `error` results reset it themselves.
  void reset();

  /// The options in force, with `path` resolved.
  const ParserOptions& options() const { return options_; }

  /// Progress of a chunked body across `incomplete` calls, as offsets from the
  /// start of the input (so the caller's buffer may move between calls).
  struct ChunkState {
    enum class Phase : std::uint8_t { size_line, data, data_end, trailers };
    bool active = false;
    Phase phase = Phase::size_line;
    std::size_t body_start = 0;     ///< offset where the chunked body begins
    std::size_t pos = 0;            ///< next unread offset (start of a line when not in data)
    std::uint64_t remaining = 0;    ///< bytes left in the current chunk
    std::size_t trailer_start = 0;  ///< offset of the trailer section
    struct FieldOffsets {
      std::size_t name, name_len, value, value_len;
    };
    std::vector<FieldOffsets> trailer_offsets;
  };

 private:
  template <class Scan>
  ParseResult parse_with(std::string_view input, Request& out);
  template <class Scan>
  ParseResult decode_chunked(std::string_view input, std::size_t body_start, Request& out);

  /// What only a chunked body needs, made on a connection's first one: most connections
  /// never send one, and it is an eighth of an idle connection's memory.
  struct Chunked {
    ChunkState state;
    std::string body;              // the decoded body
    std::vector<Header> trailers;  // views into the input, rebuilt on completion
  };

  ParserOptions options_;
  std::unique_ptr<Chunked> chunked_;
};

}  // namespace pp::http
