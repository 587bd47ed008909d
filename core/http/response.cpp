// core/http/response.cpp -- the response writer. Plain appends and std::to_chars:
// a head is a dozen memcpy-sized appends, with no format-string parsing.
#include "core/http/response.h"

#include <algorithm>
#include <charconv>

#include "core/access_log.h"
#include "core/http/char_class.h"
#include "core/http/date.h"
#include "core/http/status.h"
#include "core/metrics.h"

namespace pp::http {

bool is_token(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return detail::kTokenTable[static_cast<unsigned char>(c)] != 0;
  });
}

bool is_field_value(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
}

void append_decimal(std::string& out, std::uint64_t v) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(end - buf));
}

namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

}  // namespace

void append_status_line(std::string& out, int status, std::string_view reason) {
  // Counted here for the worker's metrics (a thread-local read; nothing off workers).
  if (WorkerMetrics* m = thread_metrics()) m->count_response(status);
  note_response_status(status);  // the access log's status for this response
  if (reason.empty()) reason = reason_phrase(status);
  out.append("HTTP/1.1 ", 9);
  append_decimal(out, static_cast<std::uint64_t>(status));
  out.push_back(' ');
  out.append(reason);
  out.append("\r\n", 2);
}

void append_server_and_date(std::string& out, bool server, bool date) {
  if (server) {
    out.append("Server: ", 8);
    out.append(kServerName);
    out.append("\r\n", 2);
  }
  if (date) out.append(date_header_line());
}

void append_connection(std::string& out, ConnectionHeader connection) {
  if (connection == ConnectionHeader::close) {
    out.append("Connection: close\r\n", 19);
  } else if (connection == ConnectionHeader::keep_alive) {
    out.append("Connection: keep-alive\r\n", 24);
  }
}

void append_chunk_head(std::string& out, std::uint64_t size) {
  char buf[16];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, size, 16);
  out.append(buf, static_cast<std::size_t>(end - buf));
  out.append("\r\n", 2);
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  append_chunk_head(out, data.size());
  out.append(data);
  out.append("\r\n", 2);
}

void append_response_head(std::string& out, const ResponseHead& head) {
  out.reserve(out.size() + 160 + head.content_type.size());
  append_status_line(out, head.status);
  append_server_and_date(out);
  if (!head.content_type.empty()) append_field(out, "Content-Type", head.content_type);
  if (head.has_content_length) {
    out.append("Content-Length: ", 16);
    append_decimal(out, head.content_length);
    out.append("\r\n", 2);
  }
  append_connection(out, head.connection);
  for (const Header& h : head.extra) append_field(out, h.name, h.value);
  out.append("\r\n", 2);
}

void append_response(std::string& out, ResponseHead head, std::string_view body) {
  head.content_length = body.size();
  head.has_content_length = true;
  append_response_head(out, head);
  out.append(body);
}

void append_response(std::string& out, int status, std::string_view content_type,
                     std::string_view body, bool close) {
  ResponseHead head;
  head.status = status;
  head.content_type = content_type;
  head.connection = close ? ConnectionHeader::close : ConnectionHeader::none;
  append_response(out, head, body);
}

ConnectionHeader connection_for(const Request& request, bool close_after) {
  if (close_after || !request.keep_alive) return ConnectionHeader::close;
  return request.minor_version == 0 ? ConnectionHeader::keep_alive : ConnectionHeader::none;
}

void append_error_response(std::string& out, int status, bool close) {
  std::string_view reason = reason_phrase(status);
  char body[64];
  auto [n, ec] = std::to_chars(body, body + 4, status);
  std::size_t len = static_cast<std::size_t>(n - body);
  body[len++] = ' ';
  std::size_t take = std::min(reason.size(), sizeof body - len - 1);
  reason.copy(body + len, take);
  len += take;
  body[len++] = '\n';
  append_response(out, status, "text/plain", {body, len}, close);
}

void append_range_not_satisfiable(std::string& out, std::uint64_t size, bool close) {
  char value[32] = "bytes */";
  auto [end, ec] = std::to_chars(value + 8, value + sizeof value, size);
  const Header extra[] = {{"Content-Range", {value, static_cast<std::size_t>(end - value)}}};
  ResponseHead head;
  head.status = 416;
  head.content_length = 0;
  head.connection = close ? ConnectionHeader::close : ConnectionHeader::none;
  head.extra = extra;
  append_response_head(out, head);
}

}  // namespace pp::http
