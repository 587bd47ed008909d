// core/http/simd_path.h -- which byte-scanning code the HTTP parser runs: scalar,
// SSE4.2 or AVX2, picked at run time from the CPU's features. Every path gives the
// same results; they differ only in speed.
#pragma once

#include <cstdint>
#include <string_view>

namespace pp::http {

/// A scanning path. `automatic` means "the best this CPU supports".
enum class Path : std::uint8_t { automatic, scalar, sse42, avx2 };

/// True when this CPU (and this build) can run `path`. `automatic` and `scalar`
/// always can; SIMD paths need x86-64 and a GCC-compatible compiler (MSVC builds
/// and other architectures run the scalar path).
bool path_supported(Path path);

/// The fastest supported path (avx2 > sse42 > scalar), detected once.
Path best_path();

/// Sets the process-wide default that parsers with `ParserOptions::path ==
/// automatic` use. Use it for a command-line flag or a benchmark; tests usually
/// force a path per parser instead. Returns false (and changes nothing) when the
/// CPU cannot run `path`. `automatic` restores the best path.
bool set_parser_path(Path path);

/// The process-wide default path, resolved (never `automatic`). Log it at start-up.
Path active_path();

/// "auto", "scalar", "sse4.2", "avx2": for logs and flags.
std::string_view path_name(Path path);

/// Parses a name as `path_name` writes it ("sse42" is accepted too); false when
/// unknown.
bool parse_path_name(std::string_view name, Path& out);

/// Resolves `automatic` to `active_path()`; other values pass through unchanged.
Path resolve_path(Path path);

}  // namespace pp::http
