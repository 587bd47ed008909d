// examples/httpd/http_connection.cpp
#include "examples/httpd/http_connection.h"

#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "core/http/range.h"
#include "core/http/response.h"
#include "core/net.h"

namespace httpd {

namespace http = pp::http;

namespace {

constexpr std::string_view kHello = "Hello, World!";
constexpr std::string_view kJson = R"({"message":"Hello, World!"})";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Maps a URL path to a file below the root. Returns the HTTP status to answer
// with on failure: 400 for broken percent-encoding or NUL, 404 for any attempt to
// leave the root (".." segments in any spelling) -- the server never says more.
int map_path(std::string_view url_path, const std::string& root, std::string& out) {
  std::string decoded;
  decoded.reserve(url_path.size());
  for (std::size_t i = 0; i < url_path.size(); ++i) {
    char c = url_path[i];
    if (c == '%') {
      if (i + 2 >= url_path.size()) return 400;
      int hi = hex_value(url_path[i + 1]), lo = hex_value(url_path[i + 2]);
      if (hi < 0 || lo < 0) return 400;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return 400;
    decoded.push_back(c);
  }
  if (decoded.empty() || decoded[0] != '/') return 400;
  // Reject any ".." segment instead of normalising: no legitimate link needs one.
  std::size_t start = 0;
  while (start <= decoded.size()) {
    std::size_t end = decoded.find('/', start);
    if (end == std::string::npos) end = decoded.size();
    if (std::string_view(decoded).substr(start, end - start) == "..") return 404;
    start = end + 1;
  }
  out = root + decoded;
  if (out.back() == '/') out += "index.html";
  return 0;
}

std::string_view content_type_for(std::string_view path) {
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos || path.find('/', dot) != std::string_view::npos)
    return "application/octet-stream";
  std::string_view ext = path.substr(dot + 1);
  struct Entry {
    std::string_view ext, type;
  };
  static constexpr Entry kTypes[] = {
      {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"}, {"css", "text/css"},
      {"js", "text/javascript"},            {"json", "application/json"},
      {"xml", "application/xml"},           {"png", "image/png"},
      {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},                 {"svg", "image/svg+xml"},
      {"pdf", "application/pdf"},           {"wasm", "application/wasm"},
  };
  for (auto& e : kTypes)
    if (e.ext == ext) return e.type;
  return "application/octet-stream";
}

}  // namespace

Site::Site(std::string root, std::uint64_t body_limit) {
  char resolved[PATH_MAX];
  root_ = ::realpath(root.c_str(), resolved) ? resolved : root;
  parser_options_.max_body = body_limit;
}

bool Site::valid(std::string& error) const {
  std::string probe = root_ + "/.";
  std::uint64_t size = 0;
  pp::Handle h = pp::open_file_for_send(probe, size, error);
  // A directory opens but is not a regular file: exactly what we want here.
  if (h != pp::invalid_handle) {
    pp::close_handle(h);
    error = fmt::format("--root '{}' is not a folder", root_);
    return false;
  }
  if (error.find("not a regular file") != std::string::npos) {
    error.clear();
    return true;
  }
  error = fmt::format("--root: {}", error);
  return false;
}

HttpConnection::HttpConnection(pp::Loop& loop, pp::Handle sock, pp::ConnectionSet& owner,
                               const Site& site)
    : Connection(loop, sock, owner), site_(site), parser_(site.parser_options()) {}

void HttpConnection::on_data(std::span<const std::byte> data) {
  std::string_view chunk(reinterpret_cast<const char*>(data.data()), data.size());
  // Parse straight from the engine's buffer; copy only an unfinished request.
  bool buffered = !pending_.empty();
  if (buffered) pending_.append(chunk);
  std::string_view input = buffered ? std::string_view(pending_) : chunk;
  std::size_t pos = 0;
  while (pos < input.size() && !closing()) {
    http::ParseResult r = parser_.parse(input.substr(pos), request_);
    if (r.status == http::ParseStatus::incomplete) break;
    if (r.status == http::ParseStatus::error) {
      http::append_error_response(out().tail_buffer(), r.error_status, /*close=*/true);
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

void HttpConnection::respond(const http::Request& request, bool close) {
  std::string& out = this->out().tail_buffer();
  if (request.path == "/plaintext") {
    http::ResponseHead head;
    head.content_type = "text/plain";
    head.connection = http::connection_for(request, close);
    http::append_response(out, head, kHello);
  } else if (request.path == "/json") {
    http::ResponseHead head;
    head.content_type = "application/json";
    head.connection = http::connection_for(request, close);
    http::append_response(out, head, kJson);
  } else {
    respond_static(request, close);
  }
}

void HttpConnection::respond_static(const http::Request& request, bool close) {
  std::string& out = this->out().tail_buffer();
  bool head_only = request.method == "HEAD";
  if (request.method != "GET" && !head_only) {
    http::Header allow[] = {{"Allow", "GET, HEAD"}};
    http::ResponseHead head;
    head.status = 405;
    head.content_type = "text/plain";
    head.connection = http::connection_for(request, close);
    head.extra = allow;
    http::append_response(out, head, "405 Method Not Allowed\n");
    return;
  }
  std::string path;
  if (int status = map_path(request.path, site_.root(), path)) {
    http::append_error_response(out, status, close);
    return;
  }
  std::uint64_t size = 0;
  std::string error;
  pp::Handle file = pp::open_file_for_send(path, size, error);
  if (file == pp::invalid_handle) {
    http::append_error_response(out, 404, close);
    return;
  }
  http::ByteRange range = http::parse_range(request.header("Range"), size);
  if (range.outcome == http::RangeOutcome::unsatisfiable) {
    pp::close_handle(file);
    http::append_range_not_satisfiable(out, size, close);
    return;
  }
  http::ResponseHead head;
  head.content_type = content_type_for(path);
  head.connection = http::connection_for(request, close);
  std::string content_range;
  http::Header extra[2] = {{"Accept-Ranges", "bytes"}, {}};
  std::uint64_t offset = 0, length = size;
  if (range.outcome == http::RangeOutcome::partial) {
    head.status = 206;
    content_range = http::content_range(range, size);
    extra[1] = {"Content-Range", content_range};
    head.extra = std::span<const http::Header>(extra, 2);
    offset = range.offset;
    length = range.length;
  } else {
    head.extra = std::span<const http::Header>(extra, 1);
  }
  head.content_length = length;
  http::append_response_head(out, head);
  if (head_only) {
    pp::close_handle(file);
    return;
  }
  // The file's bytes go from the page cache to the socket; the queue keeps them in
  // order behind the head just written.
  this->out().append_file(file, offset, length, /*owned=*/true);
}

}  // namespace httpd
