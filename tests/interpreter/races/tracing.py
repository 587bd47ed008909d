"""sys.monitoring and sys.setprofile switched on and off while threads specialize fresh
code: a call that starts after the switch returned must raise its event. A specializer
that publishes its rewrite over an instrumented instruction (or RESUME that stores
RESUME_CHECK over INSTRUMENTED_RESUME) loses PY_START events for good."""
import sys
import threading
import time

from harness import Box, Scenario, box_ok

TOOL = 4
CALLS = 20
SOURCE = """
def race_target(b):
    return b

def driver(n, b):
    out = None
    for _ in range(n):
        out = race_target(b)
    return out
"""


class TracingToggle(Scenario):
    """Phase = gen % 4: 1 means monitoring and profiling are on and stay on, 3 means both
    are off and stay off, 0 and 2 are the switches. A reader checks only calls made
    entirely inside one stable phase: all CALLS events when on, none when off."""

    def __init__(self):
        self.gen = 0
        self.counts = threading.local()
        self.checked = []  # phases of the reads that were checked (list.append is atomic)
        sys.monitoring.use_tool_id(TOOL, "races")
        sys.monitoring.register_callback(TOOL, sys.monitoring.events.PY_START, self.on_start)

    def on_start(self, code, offset):
        if code.co_name == "race_target":
            self.counts.mon = getattr(self.counts, "mon", 0) + 1

    def on_profile(self, frame, event, arg):
        if event == "call" and frame.f_code.co_name == "race_target":
            self.counts.prof = getattr(self.counts, "prof", 0) + 1

    def warm(self):
        self.gen = 3  # off and stable
        super().warm()

    def read(self):
        ns = {}
        exec(SOURCE, ns)
        before = self.gen
        mon = getattr(self.counts, "mon", 0)
        prof = getattr(self.counts, "prof", 0)
        out = ns["driver"](CALLS, Box(1))
        mon = getattr(self.counts, "mon", 0) - mon
        prof = getattr(self.counts, "prof", 0) - prof
        after = self.gen
        return (before, after, mon, prof, out)

    def mutate(self, i):
        self.gen += 1                                  # 4k: switching on
        sys.monitoring.set_events(TOOL, sys.monitoring.events.PY_START)
        threading.setprofile_all_threads(self.on_profile)
        self.gen += 1                                  # 4k+1: on
        self.hold("on")
        self.gen += 1                                  # 4k+2: switching off
        sys.monitoring.set_events(TOOL, 0)
        threading.setprofile_all_threads(None)
        self.gen += 1                                  # 4k+3: off
        self.hold("off")

    def hold(self, phase):
        """Stay in a stable phase until a reader has been checked in it (or 0.2 s)."""
        seen = self.checked.count(phase)
        deadline = time.monotonic() + 0.2
        while self.checked.count(phase) == seen and time.monotonic() < deadline:
            time.sleep(0.0005)

    def ok(self, value):
        before, after, mon, prof, out = value
        if not box_ok(out):
            return False
        if before != after:
            return True
        if before % 4 == 1:
            self.checked.append("on")
            return mon == CALLS and prof == CALLS
        if before % 4 == 3:
            self.checked.append("off")
            return mon == 0 and prof == 0
        return True

    def finish(self):
        sys.monitoring.set_events(TOOL, 0)
        threading.setprofile_all_threads(None)
        sys.monitoring.register_callback(TOOL, sys.monitoring.events.PY_START, None)
        sys.monitoring.free_tool_id(TOOL)
        if "on" not in self.checked:
            return ["no read ran entirely while monitoring was on: nothing was checked"]
        return []


# sys.monitoring and threading.setprofile_all_threads are 3.12's.
SCENARIOS = {"tracing_toggle": TracingToggle} if hasattr(sys, "monitoring") else {}
