// core/limits.h -- what one client may cost a server: timeouts and memory bounds that every
// connection of a server obeys. The runtime (`pyparallel --header-timeout ...`, PYPARALLEL_*,
// `parallel.run(header_timeout=...)`) and pyparallel-httpd fill one in from their options.
#pragma once

#include <chrono>
#include <cstdint>

namespace pp {

/// Timeouts and bounds for a server's connections. The timeout defaults are nginx's, so a
/// client that works behind nginx works here; a zero timeout disables that timeout.
struct ConnectionLimits {
  /// A request head must arrive complete within this time from its first byte (or from
  /// the accept, for a connection's first request). On expiry: 408 if anything of the
  /// request had arrived, then close. nginx: client_header_timeout.
  std::chrono::milliseconds header_timeout{60'000};
  /// An idle keep-alive connection (no byte of a next request) is closed after this.
  /// nginx: keepalive_timeout.
  std::chrono::milliseconds keepalive_timeout{75'000};
  /// The longest wait between two reads of a request body; 408 on expiry. nginx:
  /// client_body_timeout.
  std::chrono::milliseconds body_timeout{60'000};
  /// The longest a send may make no progress (a client that stops reading); the
  /// connection is closed on expiry. nginx: send_timeout.
  std::chrono::milliseconds send_timeout{60'000};
  /// How long an error response's connection keeps reading and discarding what the
  /// client still sends (so that its unsent bytes do not turn the close into a reset that
  /// destroys the response). nginx: lingering_timeout.
  std::chrono::milliseconds linger_timeout{5'000};
  /// The grace period of a graceful stop (SIGTERM, SIGINT, a restart): requests under way
  /// finish and connections close (see ConnectionSet::drain) within it; what is still open
  /// when it ends is dropped. 0 drops at once.
  std::chrono::milliseconds drain_timeout{5'000};

  /// Largest request body (Content-Length, or decoded chunked size); 413 above. A chunked
  /// body's framing (size lines, extensions, CRLFs) counts too: it may add
  /// `max_header_bytes` to the decoded size, and its trailers another `max_header_bytes`.
  std::uint64_t max_body = 1024 * 1024;
  /// Largest header section; 431 above.
  std::uint64_t max_header_bytes = 64 * 1024;
  /// Queued response bytes above which the connection stops reading until they drain:
  /// a client that pipelines without reading the answers cannot grow our memory.
  std::uint64_t max_queued_output = 4u << 20;
  /// Connections per worker; more are closed as soon as they are accepted (with a log
  /// line at most once a second). 0: no limit but the process's descriptors.
  std::uint32_t max_connections = 16'384;
};

}  // namespace pp
