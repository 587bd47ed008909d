// core/http/range.cpp -- Range: bytes=... against a file size.
#include "core/http/range.h"

#include <fmt/format.h>

namespace pp::http {
namespace {

struct Spec {
  bool suffix = false;      // "-n"
  bool open = false;        // "a-"
  std::uint64_t first = 0;  // a (or n for a suffix)
  std::uint64_t last = 0;   // b
};

// 1*DIGIT, saturating: a position past any real file is simply unsatisfiable.
bool parse_number(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  std::uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    unsigned d = static_cast<unsigned>(c - '0');
    n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
  }
  out = n;
  return true;
}

bool parse_spec(std::string_view s, Spec& spec) {
  std::size_t dash = s.find('-');
  if (dash == std::string_view::npos) return false;
  std::string_view a = s.substr(0, dash), b = s.substr(dash + 1);
  if (a.empty()) {
    spec.suffix = true;
    return parse_number(b, spec.first);
  }
  if (!parse_number(a, spec.first)) return false;
  if (b.empty()) {
    spec.open = true;
    return true;
  }
  // RFC 9110 14.1.1: last < first makes the whole range-set invalid (ignored).
  return parse_number(b, spec.last) && spec.last >= spec.first;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// A spec resolved against `size`: partial, or unsatisfiable (RFC 9110 14.1.1:
// first-pos at or past the end, or a zero suffix), or full for a non-zero suffix of
// an empty file (satisfiable per 14.1.1, but there is no byte to put in a 206).
RangeOutcome resolve(const Spec& spec, std::uint64_t size, ByteRange& out) {
  if (spec.suffix) {
    if (spec.first == 0) return RangeOutcome::unsatisfiable;
    if (size == 0) return RangeOutcome::full;
    out.length = spec.first < size ? spec.first : size;
    out.offset = size - out.length;
    return RangeOutcome::partial;
  }
  if (spec.first >= size) return RangeOutcome::unsatisfiable;
  std::uint64_t last = spec.open || spec.last >= size ? size - 1 : spec.last;
  out.offset = spec.first;
  out.length = last - spec.first + 1;
  return RangeOutcome::partial;
}

}  // namespace

ByteRange parse_range(std::string_view value, std::uint64_t size) {
  ByteRange full;
  value = trim(value);
  // range-unit is case-insensitive (RFC 9110 14.1).
  if (value.size() < 6) return full;
  for (std::size_t i = 0; i < 5; ++i)
    if ((value[i] | 0x20) != "bytes"[i]) return full;
  if (value[5] != '=') return full;
  value.remove_prefix(6);

  int specs = 0;
  int satisfiable = 0;
  ByteRange first_ok;
  for (;;) {
    std::size_t comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    if (!item.empty()) {  // empty list elements are ignored (RFC 9110 5.6.1)
      Spec spec;
      if (!parse_spec(item, spec)) return full;
      ++specs;
      ByteRange r;
      r.outcome = resolve(spec, size, r);
      if (r.outcome != RangeOutcome::unsatisfiable && satisfiable++ == 0) first_ok = r;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  if (specs == 0) return full;
  if (satisfiable == 0) return {RangeOutcome::unsatisfiable, 0, 0};
  if (specs > 1) return full;
  return first_ok;
}

std::string content_range(const ByteRange& range, std::uint64_t size) {
  return fmt::format("bytes {}-{}/{}", range.offset, range.offset + range.length - 1, size);
}

}  // namespace pp::http
