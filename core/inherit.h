// core/inherit.h -- listening sockets a server did not open itself: those systemd passes
// (socket activation: LISTEN_FDS/LISTEN_PID) and those the instance being replaced hands
// over (core/handoff.h). Implemented per OS in platform/*/inherit.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/loop.h"

namespace pp {

/// Takes the listening sockets systemd passed to this process, with sd_listen_fds(3)'s
/// rules written out here (no libsystemd): LISTEN_PID must be this process's id, the
/// LISTEN_FDS sockets start at descriptor 3, each is made close-on-exec and non-blocking,
/// and LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the environment so that
/// children do not take them for their own. Call once, early, before other threads start;
/// later calls return 0. Returns how many listening sockets were taken; `note` says what was
/// found (or why a descriptor was skipped), for one log line.
int take_systemd_listeners(std::string& note);

/// Removes from the inherited sockets (those `take_systemd_listeners` took) the ones bound
/// to `host:port`, and returns them: the caller owns them. A wildcard host (0.0.0.0, ::)
/// matches a wildcard socket of either family on that port, since systemd's
/// `ListenStream=8080` is an IPv6 socket that also accepts IPv4. Port 0 matches nothing:
/// it asks for a new port.
std::vector<Handle> claim_inherited_listeners(std::string_view host, std::uint16_t port);

/// The local addresses ("127.0.0.1:8080") of the inherited sockets no server claimed, to log.
std::vector<std::string> unclaimed_inherited_listeners();

/// A second handle on the same socket (dup(2)): the same accept queue, closed separately.
/// invalid_handle on failure.
Handle duplicate_handle(Handle h);

/// The local address of a socket as "host:port" ("[::]:8080" for IPv6), or "?".
std::string local_address_text(Handle sock);

}  // namespace pp
