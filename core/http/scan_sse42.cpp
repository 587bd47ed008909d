// core/http/scan_sse42.cpp -- the SSE4.2 path: PCMPESTRI in range mode finds the
// first byte of a 16-byte block that falls in (or out of) up to eight byte ranges.
//
// Compiled without -msse4.2: only these functions carry the target attribute, and
// they run only after `path_supported(Path::sse42)` said the CPU has it.
#include "core/http/scan.h"

#if PP_HTTP_X86_SIMD
#include <immintrin.h>
#endif

namespace pp::http::detail {

#if PP_HTTP_X86_SIMD
namespace {

constexpr int kRangeMode = _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT;

// `Mode` is kRangeMode (ranges list the stop bytes) or kRangeMode |
// _SIDD_NEGATIVE_POLARITY (ranges list the member bytes). A hit is only a
// candidate: the exact table decides, so a range list may be a superset of the stop
// bytes (the token class needs nine member ranges; '~' is left to the table).
template <int Mode>
__attribute__((target("sse4.2"))) const char* scan_ranges(const char* p, const char* end,
                                                          __m128i ranges, int ranges_len,
                                                          const ByteTable& table) {
  while (end - p >= 16) {
    __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    int i = _mm_cmpestri(ranges, ranges_len, block, 16, Mode);
    if (i == 16) {
      p += 16;
      continue;
    }
    p += i;
    if (!table[static_cast<unsigned char>(*p)]) return p;
    ++p;
  }
  return scan_table(p, end, table);
}

}  // namespace

__attribute__((target("sse4.2"))) const char* sse42_scan_token(const char* p, const char* end) {
  // Member ranges: ! #-' *-+ --. 0-9 A-Z ^-z | (and '~', checked by the table).
  const __m128i ranges = _mm_setr_epi8('!', '!', '#', '\'', '*', '+', '-', '.', '0', '9', 'A', 'Z',
                                       '^', 'z', '|', '|');
  return scan_ranges<kRangeMode | _SIDD_NEGATIVE_POLARITY>(p, end, ranges, 16, kTokenTable);
}

__attribute__((target("sse4.2"))) const char* sse42_scan_target(const char* p, const char* end) {
  // Stop ranges: controls and SP, DEL and everything above.
  const __m128i ranges =
      _mm_setr_epi8(0x00, 0x20, 0x7F, static_cast<char>(0xFF), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return scan_ranges<kRangeMode>(p, end, ranges, 4, kTargetTable);
}

__attribute__((target("sse4.2"))) const char* sse42_scan_value(const char* p, const char* end) {
  // Stop ranges: controls except HTAB, and DEL.
  const __m128i ranges =
      _mm_setr_epi8(0x00, 0x08, 0x0A, 0x1F, 0x7F, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return scan_ranges<kRangeMode>(p, end, ranges, 6, kValueTable);
}

#else  // no x86 SIMD in this build: never selected, but keep the symbols.

const char* sse42_scan_token(const char* p, const char* e) {
  return ScalarScan::token(p, e);
}
const char* sse42_scan_target(const char* p, const char* e) {
  return ScalarScan::target(p, e);
}
const char* sse42_scan_value(const char* p, const char* e) {
  return ScalarScan::value(p, e);
}

#endif

}  // namespace pp::http::detail
