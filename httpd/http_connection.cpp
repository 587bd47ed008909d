// httpd/http_connection.cpp
#include "httpd/http_connection.h"

#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "core/http/file_response.h"
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
    std::string_view segment = std::string_view(decoded).substr(start, end - start);
    if (segment == "..") return 404;
#if defined(_WIN32)
    // Windows reads '\\' as a separator too, ':' as a drive or a stream name ("f::$DATA"),
    // and drops a segment's trailing dots and spaces (".. " and "..." can mean ".."): none
    // of these has a place in a URL path to a file under the root.
    if (segment.find_first_of("\\:") != std::string_view::npos) return 404;
    if (!segment.empty() && segment != "." && (segment.back() == '.' || segment.back() == ' '))
      return 404;
#endif
    start = end + 1;
  }
  out = root + decoded;
  if (out.back() == '/') out += "index.html";
  return 0;
}

}  // namespace

Site::Site(std::string root, std::uint64_t body_limit) {
  char resolved[PATH_MAX];
#if defined(_WIN32)
  root_ = ::_fullpath(resolved, root.c_str(), sizeof resolved) ? resolved : root;
#else
  root_ = ::realpath(root.c_str(), resolved) ? resolved : root;
#endif
  parser_options_.max_body = body_limit;
}

bool Site::valid(std::string& error) const {
  std::uint64_t size = 0;
  int code = 0;
  pp::Handle h = pp::open_file_for_send(root_ + "/.", size, error, &code);
  if (h != pp::invalid_handle) pp::close_file(h);
  // A folder opens but is not a regular file: exactly what --root must be.
  if (code == -EISDIR) {
    error.clear();
    return true;
  }
  error = fmt::format("--root '{}' is not a usable folder{}{}", root_, error.empty() ? "" : ": ",
                      error);
  return false;
}

HttpConnection::HttpConnection(pp::Loop& loop, pp::Handle sock, pp::ConnectionSet& owner,
                               const Site& site)
    : pp::http::HttpConnection(loop, sock, owner, site.parser_options()), site_(site) {}

void HttpConnection::respond(const http::Request& request, bool close) {
  if (request.path == "/plaintext" || request.path == "/json") {
    bool plain = request.path == "/plaintext";
    http::ResponseHead head;
    head.content_type = plain ? "text/plain" : "application/json";
    head.connection = http::connection_for(request, close);
    http::append_response(out().tail_buffer(), head, plain ? kHello : kJson);
  } else {
    respond_static(request, close);
  }
}

void HttpConnection::respond_static(const http::Request& request, bool close) {
  std::string& buf = out().tail_buffer();
  if (request.method != "GET" && request.method != "HEAD") {
    http::Header allow[] = {{"Allow", "GET, HEAD"}};
    http::ResponseHead head;
    head.status = 405;
    head.content_type = "text/plain";
    head.connection = http::connection_for(request, close);
    head.extra = allow;
    http::append_response(buf, head, "405 Method Not Allowed\n");
    return;
  }
  std::string path;
  if (int status = map_path(request.path, site_.root(), path)) {
    http::append_error_response(buf, status, close);
    return;
  }
  std::string error;
  int code = 0;
  if (!http::queue_file_response(out(), request, path, {}, close, error, code))
    http::append_error_response(out().tail_buffer(), 404, close);
}

}  // namespace httpd
