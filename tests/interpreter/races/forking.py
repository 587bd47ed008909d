"""fork() in a loop while other threads specialize fresh code. The child inherits every
lock as it was at the fork; one that the interpreter (or the patch series) does not reset
in the child hangs the child's first specialization."""
import os
import time
import warnings

from harness import Box, Scenario, box_ok

SOURCE = """
class Point:
    def __init__(self, b):
        self.b = b
    def get(self):
        return self.b

def work(b):
    p = Point(b)
    total = 0
    for _ in range(4):
        total += p.get().i
    return p.get()
"""
CHILD_TIMEOUT = 10.0


def fresh_work():
    ns = {}
    exec(SOURCE, ns)
    return ns["work"]


class ForkLoop(Scenario):
    """Readers compile and specialize fresh code without pause; the mutator forks, and the
    child specializes fresh code of its own and exits. A child that does not exit within
    CHILD_TIMEOUT seconds is a hang (it is killed and the scenario fails)."""

    def __init__(self):
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=".*fork.*")
        self.forks = 0

    def read(self):
        work = fresh_work()
        out = None
        for k in range(8):
            out = work(Box(k))
        return out

    def mutate(self, i):
        pid = os.fork()
        if pid == 0:
            try:
                work = fresh_work()
                ok = all(box_ok(work(Box(k)), (k,)) for k in range(16))
                os._exit(0 if ok else 3)
            finally:
                os._exit(4)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise RuntimeError(f"fork child {pid} hung for {CHILD_TIMEOUT} s")
            time.sleep(0.001)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"fork child exited with {code}")
        self.forks += 1

    def ok(self, value):
        return box_ok(value, (7,))

    def finish(self):
        return [] if self.forks else ["no fork completed"]


SCENARIOS = {
    "fork_loop": ForkLoop,
}
