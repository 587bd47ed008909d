// platform/linux/uring_setup.cpp -- uring_setup.h: the set-up ladder and opcode probe an
// io_uring loop starts with.
#include "platform/linux/uring_setup.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "platform/linux/uring_loop.h"

namespace pp::platform {
namespace {

/// major*100+minor of the running kernel (0 when uname fails).
int kernel_version() {
  utsname u{};
  if (::uname(&u) != 0) return 0;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return 0;
  return major * 100 + minor;
}

const char* opcode_name(int op) {
  switch (op) {
    case IORING_OP_ACCEPT:
      return "IORING_OP_ACCEPT";
    case IORING_OP_RECV:
      return "IORING_OP_RECV";
    case IORING_OP_SEND:
      return "IORING_OP_SEND";
    case IORING_OP_SENDMSG:
      return "IORING_OP_SENDMSG";
    case IORING_OP_CONNECT:
      return "IORING_OP_CONNECT";
    case IORING_OP_TIMEOUT:
      return "IORING_OP_TIMEOUT";
    case IORING_OP_ASYNC_CANCEL:
      return "IORING_OP_ASYNC_CANCEL";
    case IORING_OP_CLOSE:
      return "IORING_OP_CLOSE";
    case IORING_OP_READ:
      return "IORING_OP_READ";
    case IORING_OP_POLL_ADD:
      return "IORING_OP_POLL_ADD";
  }
  return "?";
}

}  // namespace

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

UringKernel uring_kernel() {
  UringKernel k;
  k.compat = env_flag(kUringCompatEnv);
  k.name = k.compat ? kUringCompatEnv : "kernel";
  k.version = k.compat ? 511 : kernel_version();
  return k;
}

bool open_uring(io_uring& ring, const LoopOptions& options, const UringKernel& kernel,
                io_uring_params& params, bool& ring_open, std::string& why) {
  const bool compat = kernel.compat;
  unsigned entries = std::clamp<unsigned>(options.queue_depth, 8, 32768);
  // The setup ladder: the best flags first, dropping what the kernel rejects (EINVAL).
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
  std::vector<unsigned> ladder;
  if (options.sqpoll) {
    // DEFER_TASKRUN needs the issuer to run completions itself, SQPOLL's thread does it.
    ladder = {base | IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED,
              base | IORING_SETUP_SQPOLL};
  } else if (!compat) {
    // R_DISABLED: the ring binds to its single issuer when enabled, which happens on the
    // first submit/run_once, i.e. on the worker that drives it, not the thread opening it.
    ladder = {base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                  IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
              base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, base};
  } else {
    ladder = {base};
  }
  int rc = -EINVAL;
  io_uring_params& p = params;
  for (unsigned flags : ladder) {
    p = io_uring_params{};
    p.flags = flags;
    // Multishot recv/accept post many CQEs per SQE: give the CQ room to absorb bursts.
    p.cq_entries = entries * 4;
    if (flags & IORING_SETUP_SQPOLL) p.sq_thread_idle = 1000;
    rc = io_uring_queue_init_params(entries, &ring, &p);
    if (rc != -EINVAL) break;
  }
  if (rc < 0) {
    int e = -rc;
    if (e == EPERM || e == EACCES)
      why =
          fmt::format("io_uring_setup: {} (blocked by seccomp or sysctl kernel.io_uring_disabled)",
                      std::strerror(e));
    else if (e == ENOSYS)
      why = fmt::format(
          "io_uring_setup: {} (kernel built without io_uring, or the call is blocked by "
          "seccomp)",
          std::strerror(e));
    else if (e == ENOMEM)
      why = fmt::format(
          "io_uring_setup: {} (RLIMIT_MEMLOCK too small for the ring on kernels before 5.12; "
          "raise it or lower queue_depth)",
          std::strerror(e));
    else
      why = fmt::format("io_uring_setup: {}", std::strerror(e));
    return false;
  }
  ring_open = true;

  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) {
    why = "io_uring opcode probe failed (kernel before 5.6)";
    return false;
  }
  std::string missing;
  for (int op : {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND, IORING_OP_SENDMSG,
                 IORING_OP_CONNECT, IORING_OP_TIMEOUT, IORING_OP_ASYNC_CANCEL, IORING_OP_CLOSE,
                 IORING_OP_READ, IORING_OP_POLL_ADD}) {
    if (!io_uring_opcode_supported(probe, op))
      missing += fmt::format("{}{}", missing.empty() ? "" : ", ", opcode_name(op));
  }
  io_uring_free_probe(probe);
  if (!missing.empty()) {
    why = fmt::format("io_uring opcode probe: kernel lacks {}", missing);
    return false;
  }
  return true;
}

}  // namespace pp::platform
