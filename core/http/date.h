// core/http/date.h -- the Date header value (IMF-fixdate, RFC 9110 5.6.7).
#pragma once

#include <cstdint>
#include <string_view>

namespace pp::http {

/// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
inline constexpr std::size_t kHttpDateLength = 29;

/// Formats `unix_seconds` (seconds since 1970-01-01 UTC) as an IMF-fixdate into
/// `out`. Use it where a date other than "now" is needed (Last-Modified).
void format_http_date(std::int64_t unix_seconds, char (&out)[kHttpDateLength]);

/// The current time as an IMF-fixdate, from this thread's cache, refreshed when
/// the second changes. The view stays valid on this thread until its next call.
std::string_view http_date();

/// The whole header line "Date: <IMF-fixdate>\r\n" from the same cache, ready to
/// append to a response head.
std::string_view date_header_line();

}  // namespace pp::http
