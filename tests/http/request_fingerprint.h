// tests/http/request_fingerprint.h -- one string that says everything a parse
// result and its request carry, so tests and the fuzzer can compare parses across
// paths and splits with a single equality. Shared by tests/http and tests/fuzz.
#pragma once

#include <string>
#include <string_view>

#include "core/http/parser.h"

namespace pp::http::testing {

inline void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '|') {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

/// "incomplete", "error 400 close=1 (reason)", or every field of the request.
inline std::string fingerprint(const ParseResult& r, const Request& req) {
  std::string out;
  if (r.status == ParseStatus::incomplete) return "incomplete";
  if (r.status == ParseStatus::error) {
    out = "error " + std::to_string(r.error_status) + " close=" + (r.close_after ? "1" : "0");
    out += " (";
    out += r.reason;
    out += ")";
    return out;
  }
  auto field = [&](std::string_view name, std::string_view value) {
    out += name;
    out += '=';
    append_escaped(out, value);
    out += '|';
  };
  out = "complete consumed=" + std::to_string(r.consumed) +
        " close=" + (r.close_after ? "1" : "0") + " keep=" + (req.keep_alive ? "1" : "0") +
        " v=1." + std::to_string(req.minor_version) + " chunked=" + (req.chunked ? "1" : "0") +
        " |";
  field("method", req.method);
  field("target", req.target);
  field("path", req.path);
  field("query", req.query);
  for (const Header& h : req.fields()) {
    out += "H:";
    append_escaped(out, h.name);
    field("", h.value);
  }
  for (const Header& h : req.trailers) {
    out += "T:";
    append_escaped(out, h.name);
    field("", h.value);
  }
  field("body", req.body);
  return out;
}

}  // namespace pp::http::testing
