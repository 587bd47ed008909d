// core/http/file_response.h -- answer a request with a file: 200, 206 or 416 from
// its Range header, the body sent with sendfile straight from the page cache.
#pragma once

#include <string>
#include <string_view>

#include "core/http/request.h"
#include "core/outbound.h"

namespace pp::http {

/// A Content-Type for a file name's extension (application/octet-stream when unknown).
std::string_view content_type_for(std::string_view path);

/// Queues the response to `request` for the file at `path`: the head, then (unless
/// HEAD) the file's bytes or the requested range of them. Returns false, queueing
/// nothing, when the file cannot be opened (the caller answers 404); `error` then
/// says why and `error_code` is the negated errno.
bool queue_file_response(Outbound& out, const Request& request, const std::string& path,
                         std::string_view content_type, bool close, std::string& error,
                         int& error_code);

}  // namespace pp::http
