// core/handoff.h -- zero-downtime restarts: the instance being replaced hands its listening
// sockets to the one replacing it, so no connection waiting in an accept queue is lost.
//
// Why not just two SO_REUSEPORT groups of sockets: when the old instance closes its sockets,
// Linux resets every connection still queued on them (nothing migrates them unless the
// administrator sets net.ipv4.tcp_migrate_req). Handing the sockets themselves over (as
// HAProxy's `expose-fd listeners`, Envoy's hot restart and nginx's binary upgrade do) keeps
// the queues alive: the old instance stops accepting and closes its copies, the new one
// accepts what was queued. The hand-over runs over a Unix socket in Linux's abstract
// namespace named after the user and the address; only a process of the same user is
// answered (SO_PEERCRED). On other systems these calls do nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/loop.h"

namespace pp {

/// Asks the instance already serving `host:port` on this machine, as this user, for its
/// listening sockets. Returns them (the caller owns them; empty when no instance answers,
/// within about two seconds at most); `from` names the instance ("pid 1234").
std::vector<Handle> request_listeners(std::string_view host, std::uint16_t port, std::string& from);

/// Offers `sockets` (this process's listeners for `host:port`, copied: the caller keeps
/// its own) to an instance started later on the same address. A background thread answers
/// requests; while an older instance still holds the address's name, it retries every
/// 100 ms until that instance withdraws. Port 0 is never offered.
void offer_listeners(std::string_view host, std::uint16_t port, const std::vector<Handle>& sockets);

/// Stops offering (the first step of a graceful stop, so a successor binds anew instead of
/// taking sockets about to close) and closes the copies. Idempotent; waits for the thread.
void withdraw_listeners();

}  // namespace pp
