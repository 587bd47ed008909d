// examples/httpd/http_connection.h -- one HTTP/1.1 connection of pyparallel-httpd.
#pragma once

#include <string>

#include "core/connection.h"
#include "core/http/parser.h"

namespace httpd {

/// What the server serves: the static folder and the request limits. Shared,
/// read-only, by every worker.
class Site {
 public:
  Site(std::string root, std::uint64_t body_limit);
  /// False (with `error` set) when the root folder is unusable.
  bool valid(std::string& error) const;
  /// The static folder, absolute.
  const std::string& root() const { return root_; }
  /// Parser limits for each connection.
  const pp::http::ParserOptions& parser_options() const { return parser_options_; }

 private:
  std::string root_;
  pp::http::ParserOptions parser_options_;
};

/// Parses pipelined requests as they arrive and queues one response per request,
/// in order; everything produced from one read leaves in one send.
class HttpConnection final : public pp::Connection {
 public:
  HttpConnection(pp::Loop& loop, pp::Handle sock, pp::ConnectionSet& owner, const Site& site);

 protected:
  void on_data(std::span<const std::byte> data) override;

 private:
  /// Answers one complete request; `close` when the connection ends after it.
  void respond(const pp::http::Request& request, bool close);
  void respond_static(const pp::http::Request& request, bool close);

  const Site& site_;
  pp::http::RequestParser parser_;
  pp::http::Request request_;
  std::string pending_;  // the unparsed start of a request split across reads
};

}  // namespace httpd
