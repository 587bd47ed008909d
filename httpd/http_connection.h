// httpd/http_connection.h -- one HTTP/1.1 connection of pyparallel-httpd.
#pragma once

#include <string>

#include "core/http/http_connection.h"

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

/// Routes: /plaintext and /json (TechEmpower's rules), anything else a file below
/// the site's root.
class HttpConnection final : public pp::http::HttpConnection {
 public:
  HttpConnection(pp::Loop& loop, pp::Handle sock, pp::ConnectionSet& owner, const Site& site);

 protected:
  void respond(const pp::http::Request& request, bool close) override;

 private:
  void respond_static(const pp::http::Request& request, bool close);
  const Site& site_;
};

}  // namespace httpd
