"""Running the Windows build under Wine from the Linux tests: one temporary WINEPREFIX per
user of this module, booted once (bounded), and its wineserver killed at the end so no Wine
process outlives the tests.

Used by tests/conftest.py (the session's `wine_prefix` fixture, for tests/e2e/test_httpd.py
through tests/e2e/httpd_hosts.py, and tests/win32/test_topology_wine.py) and by
tests/run_all.py (the Windows doctest binaries). The Windows build is the meson cross build in PP_WINDOWS_BUILD_DIR (default
./build-windows, made by `./pp build-windows`).
"""
import os
import pathlib
import shutil
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def windows_build_dir() -> pathlib.Path:
    """The mingw cross build under test."""
    return pathlib.Path(os.environ.get("PP_WINDOWS_BUILD_DIR", ROOT / "build-windows")).resolve()


def unavailable_reason() -> str | None:
    """Why the Wine tests cannot run here (None when they can)."""
    if not shutil.which("wine") or not shutil.which("wineserver"):
        return "wine not installed (./pp build-windows installs it)"
    exe = windows_build_dir() / "httpd" / "pyparallel-httpd.exe"
    if not exe.exists():
        return f"{exe} not built (./pp build-windows)"
    return None


class WinePrefix:
    """A throw-away Wine installation. Use as a context manager: it boots on entry and, on
    exit, kills every process of the prefix (wineserver -k) and removes it."""

    def __init__(self) -> None:
        self.path = pathlib.Path(tempfile.mkdtemp(prefix="pp-wine-"))
        self.env = dict(os.environ, WINEPREFIX=str(self.path), WINEDEBUG="-all",
                        # No Mono/Gecko installer dialogs: nothing here needs them.
                        WINEDLLOVERRIDES="mscoree,mshtml=")

    def __enter__(self) -> "WinePrefix":
        # A persistent wineserver, started with no pipe of ours: otherwise the first `wine`
        # after an idle pause starts a new server (and the prefix's services) that inherit
        # that command's stdout/stderr, and subprocess.run(capture_output=True) then waits
        # for them to exit (CI saw a 60 s timeout on a command that had already ended).
        # Killed in kill().
        subprocess.run(["wineserver", "-p"], env=self.env, timeout=30, check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        # The first start of a prefix creates it (a few seconds; bounded so that a broken
        # Wine fails the tests instead of hanging them).
        subprocess.run(["wineboot", "-i"], env=self.env, timeout=180,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        shutil.rmtree(self.path, ignore_errors=True)

    def kill(self) -> None:
        """Ends every Wine process of this prefix, the wineserver included."""
        try:
            subprocess.run(["wineserver", "-k"], env=self.env, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            subprocess.run(["wineserver", "-w"], env=self.env, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            pass

    def command(self, exe: pathlib.Path, *args: str) -> list[str]:
        """The command line that runs Windows program `exe` in this prefix."""
        return ["wine", str(exe), *args]
