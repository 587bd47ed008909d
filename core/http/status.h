// core/http/status.h -- HTTP status codes' reason phrases.
#pragma once

#include <string_view>

namespace pp::http {

/// The reason phrase for `status` ("OK", "Not Found", ...) for the statuses this
/// server sends; "Unknown" for others (clients ignore the phrase; RFC 9112 4).
std::string_view reason_phrase(int status);

}  // namespace pp::http
