// core/http/scan.h -- the parser's three byte scans, one set per path.
//
// Each function returns the first byte at or after `p` that is not in its class
// (token, request-target, field-value; see char_class.h), or `end`. SIMD versions
// read only inside [p, end) and let the exact tables decide every stop, so all
// paths return the same pointer for the same input. Internal to core/http.
#pragma once

#include "core/http/char_class.h"

// SIMD paths need x86 intrinsics plus GCC/Clang's `target` attribute and
// `__builtin_cpu_supports`; elsewhere the SIMD entry points run the scalar scan and
// `path_supported` reports them unavailable.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define PP_HTTP_X86_SIMD 1
#else
#define PP_HTTP_X86_SIMD 0
#endif

namespace pp::http::detail {

const char* sse42_scan_token(const char* p, const char* end);
const char* sse42_scan_target(const char* p, const char* end);
const char* sse42_scan_value(const char* p, const char* end);

const char* avx2_scan_token(const char* p, const char* end);
const char* avx2_scan_target(const char* p, const char* end);
const char* avx2_scan_value(const char* p, const char* end);

/// The parser is a template over one of these, so each path's scans are direct
/// (and, for the scalar path, inlined) calls rather than a pointer per byte run.
struct ScalarScan {
  static const char* token(const char* p, const char* e) { return scan_table(p, e, kTokenTable); }
  static const char* target(const char* p, const char* e) { return scan_table(p, e, kTargetTable); }
  static const char* value(const char* p, const char* e) { return scan_table(p, e, kValueTable); }
};

// Most runs are short (methods, field names, Host values): a SIMD call costs more
// than scanning those few bytes inline. So a SIMD scan starts inline with up to
// kInlinePrefix bytes of the scalar scan, and only a longer run pays for the call.
inline constexpr std::ptrdiff_t kInlinePrefix = 16;

template <const ByteTable& Table, const char* (*Simd)(const char*, const char*)>
inline const char* scan_hybrid(const char* p, const char* end) {
  const char* stop = end - p > kInlinePrefix ? p + kInlinePrefix : end;
  const char* q = scan_table(p, stop, Table);
  return q == stop && stop != end ? Simd(q, end) : q;
}

struct Sse42Scan {
  static const char* token(const char* p, const char* e) {
    return scan_hybrid<kTokenTable, sse42_scan_token>(p, e);
  }
  static const char* target(const char* p, const char* e) {
    return scan_hybrid<kTargetTable, sse42_scan_target>(p, e);
  }
  static const char* value(const char* p, const char* e) {
    return scan_hybrid<kValueTable, sse42_scan_value>(p, e);
  }
};

struct Avx2Scan {
  static const char* token(const char* p, const char* e) {
    return scan_hybrid<kTokenTable, avx2_scan_token>(p, e);
  }
  static const char* target(const char* p, const char* e) {
    return scan_hybrid<kTargetTable, avx2_scan_target>(p, e);
  }
  static const char* value(const char* p, const char* e) {
    return scan_hybrid<kValueTable, avx2_scan_value>(p, e);
  }
};

}  // namespace pp::http::detail
