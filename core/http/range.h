// core/http/range.h -- the Range request header (RFC 9110 14.2) for one file.
//
// Use it in the static-file route: parse the request's Range value against the
// file's size, then send 200 (whole file), 206 (`offset`, `length`, with
// `content_range`) or 416 (`append_range_not_satisfiable`).
//
// Only single byte ranges are served as 206. A multi-range request ("bytes=0-1,5-9")
// gets the whole file as 200 (RFC 9110 lets a server ignore Range; a
// multipart/byteranges body is not worth it for a static server) -- unless none of
// its ranges is satisfiable, which is 416. A Range value that is not valid
// bytes-range syntax, or uses another unit, is ignored (200), as RFC 9110 14.2 says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pp::http {

/// Which response a Range header calls for.
enum class RangeOutcome : std::uint8_t {
  full,           ///< 200 with the whole file (no, invalid, ignored or multiple ranges)
  partial,        ///< 206 with bytes [offset, offset + length)
  unsatisfiable,  ///< 416 with Content-Range: bytes */size
};

/// A Range header's meaning for one file.
struct ByteRange {
  RangeOutcome outcome = RangeOutcome::full;
  std::uint64_t offset = 0;  ///< partial: first byte to send
  std::uint64_t length = 0;  ///< partial: bytes to send (at least 1)
};

/// Parses a Range field value ("bytes=0-99", "bytes=100-", "bytes=-500") against a
/// file of `size` bytes. An absent header is `value.empty()` -> full.
ByteRange parse_range(std::string_view value, std::uint64_t size);

/// The Content-Range value for a 206: "bytes <first>-<last>/<size>".
std::string content_range(const ByteRange& range, std::uint64_t size);

}  // namespace pp::http
