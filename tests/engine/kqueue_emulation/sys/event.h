// tests/engine/kqueue_emulation/sys/event.h -- TEST-ONLY. A stand-in for BSD's <sys/event.h>
// on Linux, so that platform/bsd/kqueue_loop.cpp compiles unchanged and runs the generic
// engine suite without a BSD machine. kevent() here is emulated on epoll (and an eventfd
// per EVFILT_USER event) by kqueue_emulation.cpp beside it. It is never part of the product:
// only the engine_tests_kqueue and bsd_open_loop_tests binaries (tests/engine/meson.build)
// put this directory on their include path, and this header refuses to compile elsewhere.
// What it cannot show of real BSD/macOS behaviour: README.md beside it.
//
// Values and layout follow FreeBSD's header (minus the `ext` array FreeBSD 12 added); only
// what the emulation implements is declared, so code using anything else fails to compile
// here instead of misbehaving.
#pragma once

#if !defined(PP_TEST_KQUEUE_EMULATION)
#error "tests/engine/kqueue_emulation is test-only: build with -DPP_TEST_KQUEUE_EMULATION"
#endif
#if !defined(__linux__)
#error "the kqueue emulation maps kevent onto Linux's epoll; a BSD has the real <sys/event.h>"
#endif

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

// The emulated calls (and the struct) get names nothing else in a Linux process uses, so they
// can never bind to, or be mistaken for, a real kqueue implementation (libkqueue, say).
#define kqueue pp_test_kqueue
#define kevent pp_test_kevent

/// One change (input) or event (output), as on FreeBSD.
struct kevent {
  uintptr_t ident;       // an fd for EVFILT_READ/EVFILT_WRITE; any number for EVFILT_USER
  short filter;          // EVFILT_*
  unsigned short flags;  // EV_* (actions in, EV_EOF/EV_ERROR/echoed EV_CLEAR... out)
  unsigned int fflags;   // EVFILT_USER: NOTE_* (in), the event's user flags (out)
  int64_t data;          // EV_ERROR entries: 0 or the errno; otherwise 0 in the emulation
  void* udata;           // passed through untouched
};

// Filters. EVFILT_TIMER is deliberately absent: the engine does not use it (see
// platform/bsd/kqueue_loop.cpp) and the emulation does not implement it.
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER (-11)

// Actions and flags.
#define EV_ADD 0x0001      // add the knote, or modify it (re-evaluating its filter)
#define EV_DELETE 0x0002   // remove it
#define EV_ENABLE 0x0004   // report it again
#define EV_DISABLE 0x0008  // keep it, but report nothing
#define EV_ONESHOT 0x0010  // remove it after its first event
#define EV_CLEAR 0x0020    // edge-triggered: reset its state once it is delivered
#define EV_RECEIPT 0x0040  // report this change's result as an EV_ERROR entry, even 0
#define EV_ERROR 0x4000    // out: this entry is a change's result; data = errno or 0
#define EV_EOF 0x8000      // out: the filter's EOF (peer shut down, connection gone)

// EVFILT_USER's fflags.
#define NOTE_FFNOP 0x00000000u       // leave the user flags as they are
#define NOTE_FFAND 0x40000000u       // AND them with fflags
#define NOTE_FFOR 0x80000000u        // OR them with fflags
#define NOTE_FFCOPY 0xc0000000u      // replace them with fflags
#define NOTE_FFCTRLMASK 0xc0000000u  // the control bits above
#define NOTE_FFLAGSMASK 0x00ffffffu  // the user flags
#define NOTE_TRIGGER 0x01000000u     // trigger the event

/// Fills in one change, as BSD's macro does.
#define EV_SET(kevp_, a, b, c, d, e, f) \
  do {                                  \
    struct kevent* ev_set_p_ = (kevp_); \
    ev_set_p_->ident = (a);             \
    ev_set_p_->filter = (b);            \
    ev_set_p_->flags = (c);             \
    ev_set_p_->fflags = (d);            \
    ev_set_p_->data = (e);              \
    ev_set_p_->udata = (f);             \
  } while (0)

/// A new emulated kqueue: an epoll fd, closed with close(2). -1 with errno on failure.
int kqueue(void);

/// Applies `nchanges` changes, then (unless a change produced an EV_ERROR entry) waits up to
/// `timeout` (null: no limit; {0, 0}: just look) for up to `nevents` events. Returns the
/// entries written, or -1 with errno (EBADF: not an emulated kqueue; EINTR; a failing
/// change's errno when `eventlist` has no room for its EV_ERROR entry).
int kevent(int kq, const struct kevent* changelist, int nchanges, struct kevent* eventlist,
           int nevents, const struct timespec* timeout);
