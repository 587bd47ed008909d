"""Run every pyparallel test and print one closing line: "N passed, N failed".

Counts each doctest test case, each pytest test, each test method of CPython's own
regression tests run by the patched interpreter, and the fuzz run as one test. Each
suite runs with a time limit so a hang fails the run instead of stalling CI.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCTEST_SUMMARY = re.compile(
    r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")


class Tally:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures: list[str] = []

    def add(self, name: str, passed: int, failed: int, skipped: int = 0) -> None:
        self.passed += passed
        self.failed += failed
        self.skipped += skipped
        if failed:
            self.failures.append(f"{name}: {failed} failed")
        print(f"== {name}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)


def run(cmd, timeout, env=None, cwd=ROOT):
    """Runs cmd, streaming its output; returns (exit code, output)."""
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        print(out[-4000:])
        return 124, out
    print(proc.stdout[-6000:] if proc.returncode else proc.stdout[-1500:], flush=True)
    return proc.returncode, proc.stdout


def doctest_suites(build: pathlib.Path, tally: Tally) -> None:
    """Every test registered with meson; doctest ones are counted per test case."""
    tests = json.loads(subprocess.check_output(
        ["meson", "introspect", "--tests", str(build)], text=True))
    for t in tests:
        env = dict(os.environ, **t.get("env", {}))
        code, out = run(t["cmd"], timeout=max(60, int(t.get("timeout") or 60)) * 2,
                        env=env, cwd=t.get("workdir") or build)
        m = None
        for m in DOCTEST_SUMMARY.finditer(out):
            pass
        if m:
            passed, failed = int(m.group(2)), int(m.group(3))
            if code != 0 and failed == 0:
                failed = 1  # crashed after its summary, or a sanitizer complained
            tally.add(f"C++ {t['name']}", passed, failed)
        else:
            ok = (code == 0) != bool(t.get("should_fail"))
            tally.add(f"meson {t['name']}", int(ok), int(not ok))


def fresh_report(name: str) -> pathlib.Path:
    """build-reports/NAME.xml, with any report of an earlier run removed."""
    report = ROOT / "build-reports" / f"{name}.xml"
    report.parent.mkdir(exist_ok=True)
    if report.exists():
        report.unlink()
    return report


def count_junit(report: pathlib.Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) test cases of a JUnit XML report (pytest's, regrtest's)."""
    passed = failed = skipped = 0
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def pytest_suite(name: str, paths: list[str], env: dict, tally: Tally,
                 timeout: int = 1800) -> None:
    report = fresh_report(name)
    code, _ = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={report}", *paths], timeout=timeout, env=env)
    if not report.exists():
        tally.add(name, 0, 1)
        return
    passed, failed, skipped = count_junit(report)
    if code not in (0, 1, 5) and failed == 0:
        failed = 1  # pytest itself broke (usage error, internal error, timeout)
    tally.add(name, passed, failed, skipped)


# CPython's own regression tests for what interpreter/cpython/patches/ changes: specialization
# (test_opcache, with its race tests), the objects the specialized forms read (dicts, lists,
# sets, classes, descriptors), threads, generators, the C API and dis.
CPYTHON_TESTS = ["test_free_threading", "test_opcache", "test_capi", "test_dict", "test_list",
                 "test_set", "test_descr", "test_class", "test_sys", "test_threading",
                 "test_generators", "test_dis"]


def interpreter_info(build: pathlib.Path) -> dict:
    info = {}
    path = build / "interpreter" / "interpreter.txt"
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            info[key.strip()] = value.strip()
    return info


def cpython_regrtest(build: pathlib.Path, tally: Tally) -> None:
    """CPython's regression tests, run by the patched free-threaded interpreter the build
    embeds; each test method counts."""
    info = interpreter_info(build)
    if info.get("free_threaded") != "true" or not info.get("executable"):
        return  # a stock interpreter: its tests are not ours to run
    report = fresh_report("cpython-regrtest")
    jobs = str(min(2, os.cpu_count() or 1))
    code, _ = run([info["executable"], "-m", "test", "-j", jobs, "--timeout=900",
                   f"--junit-xml={report}", *CPYTHON_TESTS], timeout=2400)
    if not report.exists():
        tally.add("cpython regrtest", 0, 1)
        return
    passed, failed, skipped = count_junit(report)
    if code != 0 and failed == 0:
        failed = 1  # regrtest failed outside any one test (crash, timeout, env change)
    tally.add("cpython regrtest", passed, failed, skipped)


def tsan_check(tally: Tally) -> None:
    """interpreter/cpython/tsan-check.sh: the stress scenarios on a ThreadSanitizer build of the
    patched interpreter (a second interpreter build, ~7 minutes the first time; PP_TSAN=1,
    which CI sets). One test per scenario (no wrong value), one for no TSan report in
    patched code."""
    script = ROOT / "interpreter" / "cpython" / "tsan-check.sh"
    code, out = run([str(script), "2"], timeout=3600)
    passed = failed = 0
    for line in out.splitlines():
        if line.startswith('{"scenario"'):
            result = json.loads(line)
            ok = not result["bad"] and not result["errors"] and result["reads"] > 0
            passed += ok
            failed += not ok
    summary = [line for line in out.splitlines() if line.startswith("tsan-check: ")]
    clean = code == 0 and bool(summary) and " 0 in patched code" in summary[-1]
    tally.add("tsan stress scenarios", passed, failed + (passed + failed == 0))
    tally.add("tsan reports in patched code", int(clean), int(not clean))


def tsan_runtime(tally: Tally) -> None:
    """interpreter/cpython/tsan-runtime.sh: tests/parallel against a ThreadSanitizer build of the
    runtime (build-tsan-runtime, on tsan_check's interpreter; ~1.5 minutes to build, ~2 to
    run; PP_TSAN=1). One test per pytest test that ran, one for no TSan report in the
    runtime."""
    script = ROOT / "interpreter" / "cpython" / "tsan-runtime.sh"
    code, out = run([str(script)], timeout=3600)
    m = None
    for m in re.finditer(r"^tsan-runtime: (\d+) passed, (\d+) failed tests; \d+ report\(s\) "
                         r"in all, (\d+) in the runtime", out, re.M):
        pass
    passed, failed = (int(m[1]), int(m[2])) if m else (0, 0)
    if code != 0 and failed == 0 and not (m and m[3] != "0"):
        failed = 1  # broke outside any test (configure, build, pytest itself)
    clean = bool(m) and m[3] == "0"
    tally.add("tsan runtime tests", passed, failed + (passed + failed == 0))
    tally.add("tsan reports in the runtime", int(clean), int(not clean))


def fuzz(tally: Tally) -> None:
    """A bounded libFuzzer run of the HTTP parser (clang, ASan + UBSan)."""
    script = ROOT / "tests" / "fuzz" / "run-fuzz.sh"
    if not script.exists():
        return
    fb = ROOT / "build-fuzz"
    env = dict(os.environ, CXX="clang++", CC="clang")
    if not (fb / "build.ninja").exists():
        code, _ = run(["meson", "setup", str(fb), "-Dfuzz=true", "-Dtests=false",
                       "-Dinterpreter=disabled"], timeout=600, env=env)
        if code:
            tally.add("fuzz (configure)", 0, 1)
            return
    code, _ = run(["ninja", "-C", str(fb)], timeout=1200, env=env)
    if code:
        tally.add("fuzz (build)", 0, 1)
        return
    seconds = os.environ.get("PP_FUZZ_SECONDS", "60")
    code, _ = run([str(script), str(fb), seconds], timeout=int(seconds) * 3 + 120)
    tally.add("fuzz http parser", int(code == 0), int(code != 0))


def windows_under_wine(tally: Tally) -> None:
    """The Windows cross build's doctest binaries (the engine suite on IOCP -- the same
    tests/engine/test_loop.cpp every backend runs --, the connection, HTTP and platform
    tests), each run under Wine in a throw-away prefix whose processes are all killed
    afterwards. The httpd end to end under Wine (tests/e2e/test_httpd.py, its "wine" host)
    runs in the python suite. Without a cross build (no `./pp build-windows`) this is
    skipped, unless PP_EXPECT_WINDOWS=1 (set by `./pp test`, which builds it) makes the
    missing build a failure."""
    sys.path.insert(0, str(ROOT / "tests" / "win32"))
    import wine  # tests/win32/wine.py
    reason = wine.unavailable_reason()
    if reason:
        if os.environ.get("PP_EXPECT_WINDOWS") == "1":
            tally.add("windows cross build", 0, 1)
        print(f"== windows under wine: skipped: {reason}", flush=True)
        return
    build = wine.windows_build_dir()
    tests = json.loads(subprocess.check_output(
        ["meson", "introspect", "--tests", str(build)], text=True))
    with wine.WinePrefix() as prefix:
        for t in tests:
            cmd = t["cmd"] if t["cmd"][0] == "wine" else ["wine", *t["cmd"]]
            code, out = run(cmd, timeout=max(60, int(t.get("timeout") or 60)) * 2,
                            env=prefix.env, cwd=build)
            m = None
            for m in DOCTEST_SUMMARY.finditer(out):
                pass
            if m:
                passed, failed = int(m.group(2)), int(m.group(3))
                if code != 0 and failed == 0:
                    failed = 1
                tally.add(f"C++ {t['name']} (windows, wine)", passed, failed)
            else:
                tally.add(f"windows {t['name']} (wine)", int(code == 0), int(code != 0))


def main() -> int:
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build").resolve()
    tally = Tally()
    doctest_suites(build, tally)
    env = dict(os.environ, PP_BUILD_DIR=str(build))
    gil = pathlib.Path(os.environ.get("PP_GIL_BUILD_DIR", ROOT / "build-interp-gil"))
    if (gil / "build.ninja").exists():
        env["PP_GIL_BUILD_DIR"] = str(gil)
        env["PP_BUILD_DIRS"] = str(gil)
    pytest_suite("python", ["tests"], env, tally)
    # libaio is a backend that `auto` never picks: the runtime's end-to-end suites on it.
    pytest_suite("python-libaio", ["tests/parallel/test_pp_http11.py",
                                   "tests/parallel/test_pp_callbacks.py",
                                   "tests/parallel/test_pp_examples.py"],
                 dict(env, PP_TEST_BACKEND="libaio"), tally)
    cpython_regrtest(build, tally)
    windows_under_wine(tally)
    if os.environ.get("PP_TSAN") == "1":
        tsan_check(tally)
        tsan_runtime(tally)
    if os.environ.get("PP_SKIP_FUZZ") != "1":
        fuzz(tally)
    for f in tally.failures:
        print("FAILED: " + f)
    print(f"{tally.passed} passed, {tally.failed} failed, {tally.skipped} skipped")
    return 1 if tally.failed or tally.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
