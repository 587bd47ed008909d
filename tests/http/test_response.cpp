// Response writer output, byte for byte (the Date value masked), and the Date cache.
#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <string>

#include "core/http/date.h"
#include "core/http/response.h"
#include "core/http/status.h"

using namespace pp::http;

namespace {

// Replaces the 29 characters after "Date: " with "<date>", after checking there
// is exactly one Date field and that it is well formed.
std::string mask_date(std::string s) {
  std::size_t at = s.find("\r\nDate: ");
  REQUIRE(at != std::string::npos);
  CHECK(s.find("\r\nDate: ", at + 1) == std::string::npos);
  at += 8;
  REQUIRE(s.size() >= at + kHttpDateLength + 2);
  CHECK(s.substr(at + kHttpDateLength, 2) == "\r\n");
  s.replace(at, kHttpDateLength, "<date>");
  return s;
}

bool looks_like_imf_fixdate(std::string_view d) {
  if (d.size() != kHttpDateLength) return false;
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  const char* shape = "Aaa, 00 Aaa 0000 00:00:00 GMT";
  for (std::size_t i = 0; i < d.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(d[i]);
    switch (shape[i]) {
      case 'A':
        if (!std::isupper(c)) return false;
        break;
      case 'a':
        if (!std::islower(c)) return false;
        break;
      case '0':
        if (!std::isdigit(c)) return false;
        break;
      default:
        if (d[i] != shape[i]) return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("format_http_date: known instants") {
  char buf[kHttpDateLength];
  format_http_date(784111777, buf);  // RFC 9110's example
  CHECK(std::string_view(buf, kHttpDateLength) == "Sun, 06 Nov 1994 08:49:37 GMT");
  format_http_date(0, buf);
  CHECK(std::string_view(buf, kHttpDateLength) == "Thu, 01 Jan 1970 00:00:00 GMT");
  format_http_date(951782400, buf);  // leap day 2000
  CHECK(std::string_view(buf, kHttpDateLength) == "Tue, 29 Feb 2000 00:00:00 GMT");
  format_http_date(4102444799, buf);
  CHECK(std::string_view(buf, kHttpDateLength) == "Thu, 31 Dec 2099 23:59:59 GMT");
}

TEST_CASE("the Date cache gives the current second as an IMF-fixdate") {
  using namespace std::chrono;
  auto now = [] { return duration_cast<seconds>(system_clock::now().time_since_epoch()).count(); };
  auto before = now();
  std::string d(http_date());
  auto after = now();
  CHECK(looks_like_imf_fixdate(d));
  char b[kHttpDateLength], a[kHttpDateLength];
  format_http_date(before, b);
  format_http_date(after, a);
  CHECK((d == std::string_view(b, kHttpDateLength) || d == std::string_view(a, kHttpDateLength)));
  std::string_view line = date_header_line();
  CHECK(line.substr(0, 6) == "Date: ");
  CHECK(line.size() == 6 + kHttpDateLength + 2);
  CHECK(line.substr(line.size() - 2) == "\r\n");
  CHECK(looks_like_imf_fixdate(line.substr(6, kHttpDateLength)));
}

TEST_CASE("append_response: byte-exact head and body") {
  std::string out = "prefix|";
  append_response(out, 200, "text/plain", "Hello, World!");
  CHECK(mask_date(out) ==
        "prefix|HTTP/1.1 200 OK\r\nServer: pyparallel\r\nDate: <date>\r\n"
        "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!");
  out.clear();
  append_response(out, 200, "application/json", "{\"message\":\"Hello, World!\"}", true);
  CHECK(mask_date(out) ==
        "HTTP/1.1 200 OK\r\nServer: pyparallel\r\nDate: <date>\r\n"
        "Content-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n"
        "{\"message\":\"Hello, World!\"}");
}

TEST_CASE("append_response_head: extras, keep-alive, no Content-Length, no type") {
  const Header extra[] = {{"Content-Range", "bytes 0-9/100"}, {"Accept-Ranges", "bytes"}};
  ResponseHead head;
  head.status = 206;
  head.content_type = "application/octet-stream";
  head.content_length = 10;
  head.connection = ConnectionHeader::keep_alive;
  head.extra = extra;
  std::string out;
  append_response_head(out, head);
  CHECK(mask_date(out) ==
        "HTTP/1.1 206 Partial Content\r\nServer: pyparallel\r\nDate: <date>\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 10\r\n"
        "Connection: keep-alive\r\nContent-Range: bytes 0-9/100\r\nAccept-Ranges: bytes\r\n\r\n");
  ResponseHead none;
  none.status = 204;
  none.has_content_length = false;
  out.clear();
  append_response_head(out, none);
  CHECK(mask_date(out) == "HTTP/1.1 204 No Content\r\nServer: pyparallel\r\nDate: <date>\r\n\r\n");
}

TEST_CASE("responses append: a pipelined batch is one buffer") {
  std::string out;
  append_response(out, 200, "text/plain", "a");
  append_response(out, 200, "text/plain", "b");
  std::size_t first = out.find("HTTP/1.1");
  CHECK(out.find("HTTP/1.1", first + 1) != std::string::npos);
  CHECK(out.back() == 'b');
}

TEST_CASE("error responses for each status the parser and server produce") {
  struct Case {
    int status;
    const char* line;
  };
  const Case cases[] = {
      {400, "400 Bad Request"},
      {404, "404 Not Found"},
      {413, "413 Content Too Large"},
      {414, "414 URI Too Long"},
      {416, "416 Range Not Satisfiable"},
      {431, "431 Request Header Fields Too Large"},
      {500, "500 Internal Server Error"},
      {501, "501 Not Implemented"},
      {505, "505 HTTP Version Not Supported"},
  };
  for (const Case& c : cases) {
    std::string out;
    append_error_response(out, c.status, true);
    std::string body = std::string(c.line) + "\n";
    CHECK(mask_date(out) == "HTTP/1.1 " + std::string(c.line) +
                                "\r\nServer: pyparallel\r\nDate: <date>\r\n"
                                "Content-Type: text/plain\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                                body);
  }
  std::string keep;
  append_error_response(keep, 404, false);
  CHECK(keep.find("Connection") == std::string::npos);
}

TEST_CASE("416 carries Content-Range: bytes */size") {
  std::string out;
  append_range_not_satisfiable(out, 1234, false);
  CHECK(mask_date(out) ==
        "HTTP/1.1 416 Range Not Satisfiable\r\nServer: pyparallel\r\nDate: <date>\r\n"
        "Content-Length: 0\r\nContent-Range: bytes */1234\r\n\r\n");
}

TEST_CASE("reason phrases and the Connection choice") {
  CHECK(reason_phrase(200) == "OK");
  CHECK(reason_phrase(206) == "Partial Content");
  CHECK(reason_phrase(304) == "Not Modified");
  CHECK(reason_phrase(599) == "Unknown");
  Request r;
  r.minor_version = 1;
  r.keep_alive = true;
  CHECK(connection_for(r, false) == ConnectionHeader::none);
  CHECK(connection_for(r, true) == ConnectionHeader::close);
  r.minor_version = 0;
  CHECK(connection_for(r, false) == ConnectionHeader::keep_alive);
  r.keep_alive = false;
  CHECK(connection_for(r, false) == ConnectionHeader::close);
}

TEST_CASE("field values and names an application hands over: the checks http11 and the gateway share") {
  CHECK(is_field_value(""));
  CHECK(is_field_value("text/html; charset=utf-8"));
  CHECK(is_field_value("a\tb c"));            // HTAB and SP are allowed inside
  CHECK(is_field_value("caf\xc3\xa9"));       // obs-text (bytes >= 0x80)
  CHECK_FALSE(is_field_value("a\r\nX-Injected: 1"));
  CHECK_FALSE(is_field_value("a\nb"));
  CHECK_FALSE(is_field_value(std::string_view("a\0b", 3)));
  CHECK_FALSE(is_field_value("a\x7f"));
  CHECK_FALSE(is_field_value("\x01"));
  CHECK(is_token("X-Request-Id"));
  CHECK_FALSE(is_token("X Request"));
  CHECK_FALSE(is_token("X:Y"));
  CHECK_FALSE(is_token(""));
}

TEST_CASE("append_status_line: the standard reason unless one is given") {
  std::string out;
  append_status_line(out, 200);
  append_status_line(out, 404, "Nope");
  append_status_line(out, 599);
  CHECK(out == "HTTP/1.1 200 OK\r\nHTTP/1.1 404 Nope\r\nHTTP/1.1 599 " +
                   std::string(reason_phrase(599)) + "\r\n");
}

TEST_CASE("append_server_and_date: each unless the application gave its own") {
  std::string both;
  append_server_and_date(both);
  CHECK(mask_date("X\r\n" + both) == "X\r\nServer: pyparallel\r\nDate: <date>\r\n");
  std::string date_only;
  append_server_and_date(date_only, /*server=*/false);
  CHECK(date_only.rfind("Date: ", 0) == 0);
  std::string none;
  append_server_and_date(none, false, false);
  CHECK(none.empty());
}

TEST_CASE("chunked framing: size lines in hex, no empty chunk but the last") {
  std::string out;
  append_chunk(out, "hello");
  append_chunk(out, "");  // would end the body: nothing
  append_chunk(out, std::string(26, 'x'));
  append_chunk_head(out, 4096);  // a file's bytes follow
  out.append("...\r\n");
  out.append(kLastChunk);
  CHECK(out == "5\r\nhello\r\n1a\r\n" + std::string(26, 'x') + "\r\n1000\r\n...\r\n0\r\n\r\n");
}

TEST_CASE("append_connection and append_decimal") {
  std::string out;
  append_connection(out, ConnectionHeader::none);
  append_connection(out, ConnectionHeader::close);
  append_connection(out, ConnectionHeader::keep_alive);
  append_decimal(out, 0);
  out.push_back(' ');
  append_decimal(out, 18446744073709551615ull);
  CHECK(out == "Connection: close\r\nConnection: keep-alive\r\n0 18446744073709551615");
}
