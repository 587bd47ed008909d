// core/http/response.h -- writes HTTP/1.1 responses into a caller's buffer.
//
// Use these for every response the server sends: they add the headers every
// response needs (Server, Date, Content-Length, Connection when closing) and
// append to a std::string the caller reuses, so a pipelined batch of responses is
// one contiguous buffer and one send.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/http/request.h"

namespace pp::http {

/// What the Connection header says.
enum class ConnectionHeader : std::uint8_t {
  none,        ///< no header: HTTP/1.1's default, the connection stays open
  close,       ///< "Connection: close": the server closes after this response
  keep_alive,  ///< "Connection: keep-alive": for an HTTP/1.0 client that asked for it
};

/// The head of a response: status line and header fields.
struct ResponseHead {
  int status = 200;
  /// Content-Type value; omitted when empty.
  std::string_view content_type;
  /// Content-Length value. Write it for every response with a body, and for
  /// HEAD (the length GET would have sent) and sendfile (the file's bytes).
  std::uint64_t content_length = 0;
  /// False for 1xx, 204 and 304, which carry no Content-Length.
  bool has_content_length = true;
  ConnectionHeader connection = ConnectionHeader::none;
  /// More fields (Content-Range, Last-Modified, ...), written in order after the
  /// standard ones. Values must not contain CR or LF.
  std::span<const Header> extra;
};

/// The Server header's value.
inline constexpr std::string_view kServerName = "pyparallel";

/// True when `name` may be a header field's name: one or more tchar (RFC 9110 5.6.2), so
/// no space, NUL, ':' or other separator. For names an application hands over.
bool is_token(std::string_view name);

/// True when `value` may be a field value or a reason phrase: HTAB, SP, visible ASCII
/// and obs-text (RFC 9110 5.5, RFC 9112 4). Any other control byte is refused: CR and LF
/// would start a new field or response, and NUL and the rest are refused by strict
/// clients and proxies. For values an application hands over.
bool is_field_value(std::string_view value);

/// Appends `v` in decimal (Content-Length, status codes).
void append_decimal(std::string& out, std::uint64_t v);

/// Appends "HTTP/1.1 <status> <reason>\r\n", with the standard reason phrase when
/// `reason` is empty, and counts the response by status in the worker's metrics: every
/// response the engine sends starts here (not the interim 100 Continue).
void append_status_line(std::string& out, int status, std::string_view reason = {});

/// Appends the Server and Date fields, each unless the application gave its own.
void append_server_and_date(std::string& out, bool server = true, bool date = true);

/// Appends "Connection: close" or "Connection: keep-alive" (nothing for `none`).
void append_connection(std::string& out, ConnectionHeader connection);

/// Appends a chunk's size line (RFC 9112 7.1), for a chunk whose `size` bytes (never 0:
/// that is the last chunk) and closing CRLF follow, e.g. from a file.
void append_chunk_head(std::string& out, std::uint64_t size);

/// Appends one chunk of a chunked body: its size line, the data, CRLF. Empty data
/// appends nothing (an empty chunk would end the body).
void append_chunk(std::string& out, std::string_view data);

/// The last chunk and the empty trailer section: ends a chunked body.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

/// Appends "HTTP/1.1 <status> <reason>", Server, Date, Content-Type,
/// Content-Length, Connection, `extra`, and the empty line. Use it alone for
/// HEAD, for sendfile (the file follows) and for anything that streams its body.
void append_response_head(std::string& out, const ResponseHead& head);

/// Appends a whole response: the head, with `content_length = body.size()`, then
/// `body`.
void append_response(std::string& out, ResponseHead head, std::string_view body);

/// Shorthand for the common case: status, content type, body, and whether the
/// connection closes after it.
void append_response(std::string& out, int status, std::string_view content_type,
                     std::string_view body, bool close = false);

/// The response to choose for a request: `Connection: close` when `close_after`,
/// `keep-alive` for a keep-alive HTTP/1.0 client, nothing for HTTP/1.1.
ConnectionHeader connection_for(const Request& request, bool close_after);

/// Appends an error response with a short text/plain body "<status> <reason>\n"
/// (e.g. "404 Not Found\n"). Use it for 400, 404, 413, 414, 431, 500, 501 and 505;
/// parse errors (`ParseResult::error_status`) must pass `close = true`.
void append_error_response(std::string& out, int status, bool close);

/// Appends a 416 response with `Content-Range: bytes */<size>` (RFC 9110 15.5.17).
void append_range_not_satisfiable(std::string& out, std::uint64_t size, bool close);

}  // namespace pp::http
