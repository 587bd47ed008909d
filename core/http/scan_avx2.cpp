// core/http/scan_avx2.cpp -- the AVX2 path: classify 32 bytes per step with two
// VPSHUFB nibble lookups (see NibbleTables in char_class.h) and take the first
// non-member from a movemask. The lookup reproduces the scalar tables exactly
// (static_assert'ed), so no per-hit recheck is needed.
//
// Compiled without -mavx2: only these functions carry the target attribute, and
// they run only after `path_supported(Path::avx2)` said the CPU (and OS) has it.
#include "core/http/scan.h"

#if PP_HTTP_X86_SIMD
#include <immintrin.h>
#endif

namespace pp::http::detail {

#if PP_HTTP_X86_SIMD
namespace {

// Non-member bytes of one 32-byte block as 0xFF lanes.
__attribute__((target("avx2"))) inline __m256i stops32(const char* p, __m256i lo_lut,
                                                       __m256i hi_lut) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i block = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  __m256i lo = _mm256_and_si256(block, low4);
  __m256i hi = _mm256_and_si256(_mm256_srli_epi16(block, 4), low4);
  __m256i member =
      _mm256_and_si256(_mm256_shuffle_epi8(lo_lut, lo), _mm256_shuffle_epi8(hi_lut, hi));
  return _mm256_cmpeq_epi8(member, _mm256_setzero_si256());
}

__attribute__((target("avx2"))) const char* scan_nibbles(const char* p, const char* end,
                                                         const NibbleTables& n,
                                                         const ByteTable& table) {
  const __m128i lo128 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(n.lo.data()));
  const __m128i hi128 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(n.hi.data()));
  const __m256i lo_lut = _mm256_broadcastsi128_si256(lo128);
  const __m256i hi_lut = _mm256_broadcastsi128_si256(hi128);
  // 64 bytes per branch for long values (cookies, user agents, tokens in headers).
  while (end - p >= 64) {
    __m256i s0 = stops32(p, lo_lut, hi_lut);
    __m256i s1 = stops32(p + 32, lo_lut, hi_lut);
    if (!_mm256_testz_si256(_mm256_or_si256(s0, s1), _mm256_or_si256(s0, s1))) {
      unsigned b0 = static_cast<unsigned>(_mm256_movemask_epi8(s0));
      if (b0 != 0) return p + __builtin_ctz(b0);
      return p + 32 + __builtin_ctz(static_cast<unsigned>(_mm256_movemask_epi8(s1)));
    }
    p += 64;
  }
  if (end - p >= 32) {
    unsigned bits = static_cast<unsigned>(_mm256_movemask_epi8(stops32(p, lo_lut, hi_lut)));
    if (bits != 0) return p + __builtin_ctz(bits);
    p += 32;
  }
  if (end - p >= 16) {  // one 16-byte step before the scalar tail
    const __m128i low4x = _mm_set1_epi8(0x0F);
    __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i lo = _mm_and_si128(block, low4x);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(block, 4), low4x);
    __m128i member = _mm_and_si128(_mm_shuffle_epi8(lo128, lo), _mm_shuffle_epi8(hi128, hi));
    unsigned bits =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(member, _mm_setzero_si128())));
    if (bits != 0) return p + static_cast<unsigned>(__builtin_ctz(bits));
    p += 16;
  }
  return scan_table(p, end, table);
}

}  // namespace

__attribute__((target("avx2"))) const char* avx2_scan_token(const char* p, const char* end) {
  return scan_nibbles(p, end, kTokenNibbles, kTokenTable);
}
__attribute__((target("avx2"))) const char* avx2_scan_target(const char* p, const char* end) {
  return scan_nibbles(p, end, kTargetNibbles, kTargetTable);
}
__attribute__((target("avx2"))) const char* avx2_scan_value(const char* p, const char* end) {
  return scan_nibbles(p, end, kValueNibbles, kValueTable);
}

#else  // no x86 SIMD in this build: never selected, but keep the symbols.

const char* avx2_scan_token(const char* p, const char* e) {
  return ScalarScan::token(p, e);
}
const char* avx2_scan_target(const char* p, const char* e) {
  return ScalarScan::target(p, e);
}
const char* avx2_scan_value(const char* p, const char* e) {
  return ScalarScan::value(p, e);
}

#endif

}  // namespace pp::http::detail
