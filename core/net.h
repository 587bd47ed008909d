// core/net.h -- the few socket and file calls the engine's users need, declared
// without OS headers. Implemented per OS in platform/*/net.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/loop.h"

namespace pp {

/// Resolves a numeric IPv4/IPv6 address or a host name (e.g. "localhost") and a
/// port into `out`. False with `error` set when it cannot.
bool resolve_endpoint(std::string_view host, std::uint16_t port, Endpoint& out, std::string& error);

/// A non-blocking listening TCP socket bound to `host:port`. With `reuse_port`,
/// several sockets share the port and the kernel spreads connections over them
/// (one per worker). Port 0 picks a free port (see `local_port`).
/// Returns invalid_handle with `error` set on failure.
Handle listen_tcp(std::string_view host, std::uint16_t port, bool reuse_port, int backlog,
                  std::string& error);

/// A non-blocking TCP socket of `to`'s address family, for `Operation::prep_connect`.
Handle open_stream_socket(const Endpoint& to, std::string& error);

/// The local port a socket is bound to (0 on error).
std::uint16_t local_port(Handle sock);

/// The remote address of a connected socket as (numeric host, port). False when
/// the socket is not connected.
bool peer_address(Handle sock, std::string& host, std::uint16_t& port);

/// The local address a connected or bound socket uses, as (numeric host, port): where
/// the server was reached, whatever the client's Host header says. False on error.
bool local_address(Handle sock, std::string& host, std::uint16_t& port);

/// Sends a FIN: the peer reads EOF once what is queued has arrived; reading goes on.
void shutdown_send(Handle sock);

/// Disables Nagle's algorithm: responses leave as soon as they are written.
void set_nodelay(Handle sock);

/// Closes a socket synchronously (set-up and tear-down paths; the hot path uses
/// `Operation::prep_close`). Windows closes sockets and files with different calls
/// (closesocket, CloseHandle), so every caller says which it holds.
void close_socket(Handle sock);

/// Closes a file opened by `open_file_for_send`.
void close_file(Handle file);

/// Opens a regular file read-only for sendfile. Returns invalid_handle and sets
/// `error` (naming the path and the reason) if it is missing or not a regular file;
/// `error_code`, when given, receives the negated errno (-EISDIR for a non-file).
Handle open_file_for_send(const std::string& path, std::uint64_t& size, std::string& error,
                          int* error_code = nullptr);

/// A readable message for a negated errno value as found in `Completion::result`.
std::string error_text(std::int64_t negated_errno);

}  // namespace pp
