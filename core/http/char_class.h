// core/http/char_class.h -- the byte classes the HTTP/1.1 parser scans for, as exact
// 256-entry tables (the scalar path and the final word on every SIMD hit) plus the
// nibble tables the AVX2 path classifies 32 bytes at a time with.
//
// Internal to core/http: include it from the parser and the scanners only.
#pragma once

#include <array>
#include <cstdint>

namespace pp::http::detail {

/// tchar (RFC 9110 5.6.2): what methods, field names and transfer codings are made of.
constexpr bool is_tchar(unsigned c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

/// A request-target byte: visible ASCII (0x21-0x7E). Clients percent-encode
/// everything else (RFC 3986), so SP, controls, DEL and non-ASCII end the target.
constexpr bool is_target_char(unsigned c) {
  return c > 0x20 && c < 0x7F;
}

/// A field-value byte (RFC 9110 5.5): HTAB, SP, VCHAR, obs-text. CR, LF, NUL and the
/// other controls are not, so a scan stops at the line's end or at a bad byte.
constexpr bool is_field_value_char(unsigned c) {
  return c == '\t' || (c >= 0x20 && c != 0x7F);
}

/// One byte class: `member[b]` is 1 when byte `b` belongs to it.
using ByteTable = std::array<std::uint8_t, 256>;

template <bool (*In)(unsigned)>
constexpr ByteTable make_table() {
  ByteTable t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = In(c) ? 1 : 0;
  return t;
}

inline constexpr ByteTable kTokenTable = make_table<is_tchar>();
inline constexpr ByteTable kTargetTable = make_table<is_target_char>();
inline constexpr ByteTable kValueTable = make_table<is_field_value_char>();

/// The same class split by nibble, for a pshufb lookup: byte `b` is a member iff
/// `lo[b & 15] & hi[b >> 4]` is non-zero. Each distinct column pattern (which low
/// nibbles are members, for one high nibble) gets one of 8 bits; `exact` says the
/// class needed no more than 8, so the split reproduces the table bit for bit.
struct NibbleTables {
  std::array<std::uint8_t, 16> lo{};
  std::array<std::uint8_t, 16> hi{};
  bool exact = false;
};

constexpr NibbleTables make_nibble_tables(const ByteTable& t) {
  NibbleTables n{};
  std::uint16_t patterns[8]{};
  int used = 0;
  for (unsigned h = 0; h < 16; ++h) {
    std::uint16_t pattern = 0;
    for (unsigned l = 0; l < 16; ++l)
      if (t[h * 16 + l]) pattern = static_cast<std::uint16_t>(pattern | (1u << l));
    if (pattern == 0) continue;  // hi = 0: nothing in this row is a member
    int bit = -1;
    for (int i = 0; i < used; ++i)
      if (patterns[i] == pattern) bit = i;
    if (bit < 0) {
      if (used == 8) return n;  // not representable; exact stays false
      bit = used;
      patterns[used++] = pattern;
    }
    n.hi[h] = static_cast<std::uint8_t>(1u << bit);
    for (unsigned l = 0; l < 16; ++l)
      if (pattern & (1u << l)) n.lo[l] = static_cast<std::uint8_t>(n.lo[l] | (1u << bit));
  }
  for (unsigned c = 0; c < 256; ++c)
    if (((n.lo[c & 15] & n.hi[c >> 4]) != 0) != (t[c] != 0)) return n;
  n.exact = true;
  return n;
}

inline constexpr NibbleTables kTokenNibbles = make_nibble_tables(kTokenTable);
inline constexpr NibbleTables kTargetNibbles = make_nibble_tables(kTargetTable);
inline constexpr NibbleTables kValueNibbles = make_nibble_tables(kValueTable);
static_assert(kTokenNibbles.exact && kTargetNibbles.exact && kValueNibbles.exact,
              "the AVX2 classifier must match the scalar tables exactly");

/// The scalar scan: the first byte at or after `p` that is not in `table`, or `end`.
/// Unrolled by four because most runs (methods, names, short values) are short.
inline const char* scan_table(const char* p, const char* end, const ByteTable& table) {
  while (end - p >= 4) {
    if (!table[static_cast<unsigned char>(p[0])]) return p;
    if (!table[static_cast<unsigned char>(p[1])]) return p + 1;
    if (!table[static_cast<unsigned char>(p[2])]) return p + 2;
    if (!table[static_cast<unsigned char>(p[3])]) return p + 3;
    p += 4;
  }
  while (p < end && table[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

}  // namespace pp::http::detail
