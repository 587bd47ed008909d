// core/http/http_connection.cpp
#include "core/http/http_connection.h"

#include "core/http/response.h"

namespace pp::http {

HttpConnection::HttpConnection(Loop& loop, Handle sock, ConnectionSet& owner,
                               const ParserOptions& options)
    : Connection(loop, sock, owner), parser_(options) {}

void HttpConnection::on_data(std::span<const std::byte> data) {
  std::string_view chunk(reinterpret_cast<const char*>(data.data()), data.size());
  // Parse straight from the engine's buffer; copy only an unfinished request.
  bool buffered = !pending_.empty();
  if (buffered) pending_.append(chunk);
  std::string_view input = buffered ? std::string_view(pending_) : chunk;
  std::size_t pos = 0;
  while (pos < input.size() && !closing()) {
    ParseResult r = parser_.parse(input.substr(pos), request_);
    if (r.status == ParseStatus::incomplete) break;
    if (r.status == ParseStatus::error) {
      append_error_response(out().tail_buffer(), r.error_status, /*close=*/true);
      pos = input.size();
      close_after_send();
      break;
    }
    respond(request_, r.close_after);
    pos += r.consumed;
    continue_sent_ = false;
    if (r.close_after) close_after_send();
  }
  if (pos < input.size() && !closing()) maybe_continue(input.substr(pos));
  if (buffered)
    pending_.erase(0, pos);
  else if (pos < input.size() && !closing())
    pending_.assign(input.substr(pos));
  flush();
}

namespace {
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}
}  // namespace

void HttpConnection::maybe_continue(std::string_view unparsed) {
  // Only the incomplete-request path gets here, and only once per request: the
  // scan costs nothing on the common path of requests that arrive whole.
  if (continue_sent_) return;
  auto head_end = unparsed.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return;
  std::string_view head = unparsed.substr(0, head_end);
  auto line_end = head.find("\r\n");
  // HTTP/1.0 clients never expect a 100 (RFC 9110 10.1.1).
  if (line_end == std::string_view::npos || !head.substr(0, line_end).ends_with("HTTP/1.1"))
    return;
  std::size_t pos = line_end + 2;
  while (pos < head.size()) {
    auto end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    std::string_view field = head.substr(pos, end - pos);
    auto colon = field.find(':');
    if (colon != std::string_view::npos && iequals(field.substr(0, colon), "expect") &&
        iequals(trim(field.substr(colon + 1)), "100-continue")) {
      out().append("HTTP/1.1 100 Continue\r\n\r\n");
      continue_sent_ = true;
      return;
    }
    pos = end + 2;
  }
}

}  // namespace pp::http
