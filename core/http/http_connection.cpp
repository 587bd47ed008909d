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
    if (r.close_after) close_after_send();
  }
  if (buffered)
    pending_.erase(0, pos);
  else if (pos < input.size() && !closing())
    pending_.assign(input.substr(pos));
  flush();
}

}  // namespace pp::http
