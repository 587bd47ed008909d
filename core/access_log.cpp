// core/access_log.cpp -- see access_log.h. Written with C stdio only (core has no OS
// headers): fwrite on one FILE is atomic against the other threads' fwrite on it, so two
// workers' batches never interleave, and a batch holds whole lines.
#include "core/access_log.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include <fmt/format.h>

namespace pp {
namespace {

// Batches: large enough that writing costs nothing per request, small enough that a
// second's lines of a busy worker do not sit in memory.
constexpr std::size_t kBatchBytes = 32 * 1024;
// The longest a line waits in a worker's buffer while that worker keeps serving.
constexpr auto kMaxAge = std::chrono::seconds(1);

std::atomic<bool> enabled{false};
// The destination. Writers hold the lock shared while they write a batch; a reopen holds it
// exclusively while it swaps the FILE, so nobody writes to a closed one.
std::shared_mutex file_mutex;
std::FILE* file = nullptr;  // guarded by file_mutex; stderr or the opened file
std::string file_path;      // guarded by file_mutex; empty for stderr

thread_local int last_status = 0;

struct Buffer {
  std::string lines;
  std::chrono::steady_clock::time_point oldest{};
  ~Buffer() { write_out(); }  // a worker's thread ends: its last lines go out
  void write_out() {
    if (lines.empty()) return;
    {
      std::shared_lock lock(file_mutex);
      if (file) {
        std::fwrite(lines.data(), 1, lines.size(), file);
        std::fflush(file);
      }
    }
    lines.clear();
    if (lines.capacity() > 4 * kBatchBytes) lines.shrink_to_fit();
  }
};
thread_local Buffer buffer;

// Appends `text` with what could break the line or its quotes escaped as \xHH (nginx's
// way): a target may carry a quote, and a method or target nothing unprintable reaches
// here, but the log must stay one line per response whatever a handler was given.
void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\')
      fmt::format_to(std::back_inserter(out), "\\x{:02X}", u);
    else
      out.push_back(c);
  }
}

}  // namespace

bool open_access_log(const std::string& path, std::string& error) {
  std::unique_lock lock(file_mutex);
  std::FILE* f = stderr;
  if (!path.empty()) {
    f = std::fopen(path.c_str(), "a");
    if (!f) {
      error = fmt::format("access log {}: {}", path, std::strerror(errno));
      return false;
    }
  }
  if (file && file != stderr) std::fclose(file);
  file = f;
  file_path = path;
  enabled.store(true, std::memory_order_relaxed);
  return true;
}

bool reopen_access_log(std::string& error) {
  std::unique_lock lock(file_mutex);
  if (!file || file_path.empty()) return true;
  std::FILE* f = std::fopen(file_path.c_str(), "a");
  if (!f) {
    error = fmt::format("access log {}: reopening: {}", file_path, std::strerror(errno));
    return false;
  }
  std::fclose(file);
  file = f;
  return true;
}

void close_access_log() {
  enabled.store(false, std::memory_order_relaxed);
  buffer.write_out();  // the main thread's own lines (the runtime with workers=0)
  std::unique_lock lock(file_mutex);
  if (file && file != stderr) std::fclose(file);
  file = nullptr;
  file_path.clear();
}

bool access_log_enabled() {
  return enabled.load(std::memory_order_relaxed);
}

void log_access(std::string_view client, std::string_view method, std::string_view target,
                int minor_version, int status, std::uint64_t bytes,
                std::chrono::steady_clock::duration took,
                std::chrono::steady_clock::time_point now) {
  std::string& out = buffer.lines;
  if (out.empty()) buffer.oldest = now;
  out.append(client.empty() ? std::string_view("-") : client);
  out.append(" - \"");
  if (method.empty()) {
    out.push_back('-');  // no request line: what failed to parse (a 400)
  } else {
    append_escaped(out, method);
    out.push_back(' ');
    append_escaped(out, target);
    fmt::format_to(std::back_inserter(out), " HTTP/1.{}", minor_version);
  }
  double ms = std::chrono::duration<double, std::milli>(took).count();
  fmt::format_to(std::back_inserter(out), "\" {} {} {:.1f}ms\n", status, bytes, ms);
  if (out.size() >= kBatchBytes || now - buffer.oldest >= kMaxAge) buffer.write_out();
}

void flush_access_log(bool only_if_old) {
  if (buffer.lines.empty()) return;
  if (only_if_old && std::chrono::steady_clock::now() - buffer.oldest < kMaxAge) return;
  buffer.write_out();
}

int last_response_status() {
  return last_status;
}

void note_response_status(int status) {
  last_status = status;
}

}  // namespace pp
