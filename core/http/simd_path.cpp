// core/http/simd_path.cpp -- run-time choice of the parser's scanning path.
#include "core/http/simd_path.h"

#include <atomic>

#include "core/http/scan.h"

namespace pp::http {
namespace {

Path detect_best() {
#if PP_HTTP_X86_SIMD
  __builtin_cpu_init();  // may run before libgcc's constructor has filled the model
  // libgcc/compiler-rt check OSXSAVE/XCR0 too, so "avx2" also means the OS saves YMM.
  if (__builtin_cpu_supports("avx2")) return Path::avx2;
  if (__builtin_cpu_supports("sse4.2")) return Path::sse42;
#endif
  return Path::scalar;
}

// `automatic` here means "not forced": resolve to the best path on every read so
// no start-up ordering (static initialisers) can observe a half-made choice.
std::atomic<Path> g_default{Path::automatic};

}  // namespace

Path best_path() {
  static const Path best = detect_best();
  return best;
}

bool path_supported(Path path) {
  switch (path) {
    case Path::automatic:
    case Path::scalar:
      return true;
    case Path::sse42:
      return best_path() == Path::sse42 || best_path() == Path::avx2;
    case Path::avx2:
      return best_path() == Path::avx2;
  }
  return false;
}

bool set_parser_path(Path path) {
  if (!path_supported(path)) return false;
  g_default.store(path, std::memory_order_relaxed);
  return true;
}

Path active_path() {
  Path p = g_default.load(std::memory_order_relaxed);
  return p == Path::automatic ? best_path() : p;
}

Path resolve_path(Path path) {
  return path == Path::automatic ? active_path() : path;
}

std::string_view path_name(Path path) {
  switch (path) {
    case Path::automatic:
      return "auto";
    case Path::scalar:
      return "scalar";
    case Path::sse42:
      return "sse4.2";
    case Path::avx2:
      return "avx2";
  }
  return "unknown";
}

bool parse_path_name(std::string_view name, Path& out) {
  for (Path p : {Path::automatic, Path::scalar, Path::sse42, Path::avx2}) {
    if (name == path_name(p)) {
      out = p;
      return true;
    }
  }
  if (name == "sse42") {
    out = Path::sse42;
    return true;
  }
  return false;
}

}  // namespace pp::http
