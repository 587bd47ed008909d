// core/http/file_response.cpp
#include "core/http/file_response.h"

#include "core/http/range.h"
#include "core/http/response.h"
#include "core/net.h"

namespace pp::http {

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

bool queue_file_response(Outbound& out, const Request& request, const std::string& path,
                         std::string_view content_type, bool close, std::string& error,
                         int& error_code) {
  std::uint64_t size = 0;
  Handle file = open_file_for_send(path, size, error, &error_code);
  if (file == invalid_handle) return false;
  std::string& buf = out.tail_buffer();
  ByteRange range = parse_range(request.header("Range"), size);
  if (range.outcome == RangeOutcome::unsatisfiable) {
    close_file(file);
    append_range_not_satisfiable(buf, size, close);
    return true;
  }
  ResponseHead head;
  head.content_type = content_type.empty() ? content_type_for(path) : content_type;
  head.connection = connection_for(request, close);
  std::string content_range_value;
  Header extra[2] = {{"Accept-Ranges", "bytes"}, {}};
  std::uint64_t offset = 0, length = size;
  if (range.outcome == RangeOutcome::partial) {
    head.status = 206;
    content_range_value = content_range(range, size);
    extra[1] = {"Content-Range", content_range_value};
    head.extra = std::span<const Header>(extra, 2);
    offset = range.offset;
    length = range.length;
  } else {
    head.extra = std::span<const Header>(extra, 1);
  }
  head.content_length = length;
  append_response_head(buf, head);
  if (request.method == "HEAD") {
    close_file(file);
    return true;
  }
  // The queue keeps the file's bytes in order behind the head just written.
  out.append_file(file, offset, length, /*owned=*/true);
  return true;
}

}  // namespace pp::http
