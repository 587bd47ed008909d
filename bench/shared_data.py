#!/usr/bin/env python3
"""Workers reading main-thread data: a loop over a table built at import, run on a
pyparallel worker with the data shared (immortal, --share-main-data on) and left mortal
(off), against the same loop on the main thread of Debian's python3.11 (the anchor), all in
one run.

    ./pp bench shared_data.py [--requests 40] [--repeat 2]

The table and loops are bench/servers/shared_data_work.py (20,000 random reads of a
1,000,000-entry dict: table[k] via a local name, table.get(k), and TABLE[k] via the module
global). The server (bench/servers/pp_shared_data.py, 2 workers) times the loop inside the
handler and answers with the milliseconds; one client, then two at once (both workers
reading the same dict), --requests each. Printed: the median ms per loop and the ratio to
python3.11's main thread (lower is faster).
"""
from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import threading

from benchlib import BUILD, ROOT, free_port, wait_listening

SERVERS = ROOT / "bench" / "servers"
PYPARALLEL = BUILD / "interpreter" / "pyparallel"
LOOPS = ("subscript", "get", "global_name")


def anchor(rounds: int) -> dict[str, float]:
    out = subprocess.run(["/usr/bin/python3", str(SERVERS / "shared_data_work.py"),
                          str(rounds)], capture_output=True, text=True, check=True).stdout
    return {name: float(ms) for name, ms in (line.split() for line in out.splitlines())}


def drive(port: int, loop: str, requests: int, clients: int) -> float:
    times: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(requests):
            conn.request("GET", "/" + loop)
            times.append(float(conn.getresponse().read()))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statistics.median(times)


def measure(share: str, requests: int) -> dict[tuple[str, int], float]:
    port = free_port()
    proc = subprocess.Popen([str(PYPARALLEL), "--share-main-data", share,
                             str(SERVERS / "pp_shared_data.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, timeout=60)
        for loop in LOOPS:  # warm up: specialization, first reads
            drive(port, loop, 3, 1)
        return {(loop, clients): drive(port, loop, requests, clients)
                for loop in LOOPS for clients in (1, 2)}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="per client and loop")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds; medians")
    args = ap.parse_args()
    if not PYPARALLEL.is_file():
        print(f"{PYPARALLEL} not built (./pp build)")
        return 1
    rounds: dict[str, list[dict]] = {"python3.11": [], "on": [], "off": []}
    for _ in range(args.repeat):
        base = anchor(args.requests)
        rounds["python3.11"].append({(k, c): v for k, v in base.items() for c in (1, 2)})
        for share in ("on", "off"):
            rounds[share].append(measure(share, args.requests))
    med = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
           for name, runs in rounds.items()}
    print(f"{'loop':<13}{'clients':>8}{'python3.11 ms':>15}{'shared ms':>11}{'x':>7}"
          f"{'mortal ms':>11}{'x':>7}{'mortal/shared':>15}")
    for loop in LOOPS:
        for clients in (1, 2):
            a = med["python3.11"][(loop, clients)]
            on, off = med["on"][(loop, clients)], med["off"][(loop, clients)]
            print(f"{loop:<13}{clients:>8}{a:>15.2f}{on:>11.2f}{on / a:>7.2f}{off:>11.2f}"
                  f"{off / a:>7.2f}{off / on:>15.2f}")
    print("(python3.11: the loop on its main thread, one at a time; x: ratio to it, lower "
          "is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
