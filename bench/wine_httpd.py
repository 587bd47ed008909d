#!/usr/bin/env python3
"""pyparallel-httpd on IOCP under Wine vs the Linux build, same run, same wrk settings.

    ./pp build-windows && ./pp bench wine_httpd.py [--seconds 5] [--repeat 3]

The anchor is the Linux build (PP_BUILD_DIR, backend auto); the other row is
build-windows/httpd/pyparallel-httpd.exe on the iocp backend, in a throw-away Wine
prefix. Both serve /plaintext with one worker. What the ratio means: Wine turns every
Winsock call and every completion-port wait into Linux syscalls plus round trips to the
wineserver, so the figure includes Wine's own costs; it is a regression check for the
Windows build (a change that makes it fall against the anchor is worth a look), not a
statement about speed on Windows. The CPU column counts the Wine process only, not the
wineserver's share, so it understates the Wine side's cost.
"""
import argparse
import pathlib
import sys

from benchlib import BUILD, ROOT, Command, free_port, median, table, wrk

sys.path.insert(0, str(ROOT / "tests" / "win32"))
from wine import WinePrefix, unavailable_reason, windows_build_dir  # noqa: E402

SCENARIOS = [("8 conns", 8, 0), ("8 conns, pipeline 16", 8, 16)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per server, alternating; the table shows medians")
    args = ap.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"wine_httpd: {reason}", file=sys.stderr)
        return 2
    linux = BUILD / "httpd" / "pyparallel-httpd"
    exe = windows_build_dir() / "httpd" / "pyparallel-httpd.exe"
    root = pathlib.Path(ROOT)
    with WinePrefix() as prefix:
        for label, conns, depth in SCENARIOS:
            runs: dict[str, list] = {"linux": [], "wine": []}
            for _ in range(args.repeat):  # alternate, so drift in load hits both alike
                port = free_port()
                srv = Command([str(linux), "--port", str(port), "--workers", "1",
                               "--host", "127.0.0.1", "--root", str(root)], port)
                try:
                    runs["linux"].append(wrk("linux", srv.proc.pid,
                                             f"http://127.0.0.1:{port}/plaintext", conns,
                                             args.seconds, pipeline=depth))
                finally:
                    srv.stop()
                port = free_port()
                srv = Command(prefix.command(exe, "--port", str(port), "--workers", "1",
                                             "--host", "127.0.0.1", "--backend", "iocp",
                                             "--root", f"Z:{root}"), port, env=prefix.env)
                try:
                    runs["wine"].append(wrk("wine", srv.proc.pid,
                                            f"http://127.0.0.1:{port}/plaintext", conns,
                                            args.seconds, pipeline=depth))
                finally:
                    srv.stop()
            anchor = median(runs["linux"])
            rows = [("linux (auto backend)", anchor),
                    ("windows .exe, iocp, under Wine", median(runs["wine"]))]
            print(f"\n## 1 worker, {label} (wrk -t1, {args.seconds}s, median of {args.repeat})")
            print(table(rows, anchor), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
