"""The CPU-bound request body both sides of python_servers.py's CPU comparison run:
bench/servers/pp_cpu.py on pyparallel and uvloop_httptools.py --cpu-iterations on
/usr/bin/python3 import it from here, so they execute the same Python."""


def work(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i % 7
    return x
