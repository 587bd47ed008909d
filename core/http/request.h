// core/http/request.h -- what the HTTP/1.1 request parser produces: a parsed
// request (views into the caller's bytes), and the outcome of one parse call.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace pp::http {

/// The most header fields a request may carry; one more is answered with 431.
inline constexpr std::size_t kMaxHeaders = 100;

/// One field line: name and value as they appear on the wire (the value without
/// its leading and trailing whitespace). Views into the parsed buffer.
struct Header {
  std::string_view name;
  std::string_view value;
};

/// A complete request. Every view points into the buffer handed to
/// `RequestParser::parse`, except `body` of a chunked request, which points into the
/// parser's own storage: both stay valid until that buffer changes or the parser's
/// next `parse` call, whichever comes first. Reuse one Request per connection.
struct Request {
  std::string_view method;  ///< "GET", "POST", ... (case-sensitive, any token)
  std::string_view target;  ///< the request-target as sent ("/a/b?x=1", "*", "http://h/p")
  std::string_view path;    ///< target up to '?' (origin form); the path of an absolute form
  std::string_view query;   ///< after '?', without it; empty when there is none
  int minor_version = 1;    ///< 0 for HTTP/1.0, 1 for HTTP/1.1
  bool keep_alive = true;   ///< false: answer, then close (HTTP/1.0 default, Connection: close)
  bool chunked = false;     ///< the body arrived with Transfer-Encoding: chunked (decoded)
  std::string_view body;    ///< Content-Length bytes, or the decoded chunked body
  std::size_t num_headers = 0;
  std::array<Header, kMaxHeaders> headers;
  /// Trailer fields of a chunked body (views into the parsed buffer).
  std::span<const Header> trailers;

  /// The header fields, in arrival order.
  std::span<const Header> fields() const { return {headers.data(), num_headers}; }
  /// The value of the first field named `name` (ASCII case-insensitive); empty
  /// when absent. Use `has_header` to tell absent from empty.
  std::string_view header(std::string_view name) const;
  /// True when a field named `name` (ASCII case-insensitive) is present.
  bool has_header(std::string_view name) const;
};

/// ASCII case-insensitive equality, for field names and case-insensitive tokens
/// such as `100-continue` or `close`.
bool ascii_iequals(std::string_view a, std::string_view b);

/// What one `parse` call found at the start of the buffer.
enum class ParseStatus : std::uint8_t {
  complete,    ///< a whole request: answer it, drop `consumed` bytes, parse again
  incomplete,  ///< a prefix of a valid request: read more, then parse from the same start
  error,       ///< invalid: answer `error_status`, then close the connection
};

/// The outcome of one `RequestParser::parse` call.
struct ParseResult {
  ParseStatus status = ParseStatus::incomplete;
  /// complete: the request's length in bytes, including any empty lines before it.
  std::size_t consumed = 0;
  /// error: the HTTP status to answer with (400, 413, 414, 431, 501, 505).
  int error_status = 0;
  /// Close the connection after answering. Always true on error (after a framing
  /// error the next request's start is unknown -- reading on would let a request be
  /// smuggled), and on a complete request that is not keep-alive.
  bool close_after = false;
  /// incomplete: the request's head (request line and header fields) is parsed
  /// into the Request and only its body is still arriving. Lets a server answer
  /// `Expect: 100-continue` before the client sends the body.
  bool head_complete = false;
  /// error: a short static explanation for logs ("obs-fold", ...). Never send it to
  /// the peer verbatim in a production response if you mind revealing the parser.
  std::string_view reason;
};

}  // namespace pp::http
