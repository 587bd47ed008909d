"""pyparallel behaves like python: scripts, -c, -m, argv, exit codes, tracebacks, the REPL."""
import textwrap


def test_script_argv_and_exit_code(pp, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import sys
        print(repr(sys.argv))
        sys.exit(int(sys.argv[2]))
    """))
    r = pp.run(script, "first arg", "3", "--workers")  # flags after the script are its own
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == repr([str(script), "first arg", "3", "--workers"])


def test_dash_c_argv(pp):
    r = pp.run("-c", "import sys; print(sys.argv)", "a", "-b")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['-c', 'a', '-b']"


def test_dash_m_runs_module_as_main(pp, tmp_path):
    (tmp_path / "mymod.py").write_text(textwrap.dedent("""
        import sys
        if __name__ == "__main__":
            print("main", sys.argv[1:])
            raise SystemExit(5)
    """))
    r = pp.run("-m", "mymod", "x", "y", cwd=tmp_path)
    assert r.returncode == 5, r.stderr
    assert r.stdout.strip() == "main ['x', 'y']"


def test_dash_m_stdlib_module(pp):
    r = pp.run("-m", "json.tool", input='{"b": [1, 2]}')
    assert r.returncode == 0, r.stderr
    assert '"b": [' in r.stdout


def test_uncaught_exception_prints_traceback_and_exits_1(pp, tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("def f():\n    raise ValueError('boom here')\nf()\n")
    r = pp.run(script)
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert "ValueError: boom here" in r.stderr
    assert 'boom.py", line 2' in r.stderr


def test_system_exit_with_message(pp):
    r = pp.run("-c", "raise SystemExit('bye')")
    assert r.returncode == 1
    assert r.stderr.strip() == "bye"


def test_stdin_script_from_pipe(pp):
    r = pp.run(input="x = 6 * 7\nprint(x)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "42"


def test_interactive_repl_from_pipe(pp):
    # -i forces the interactive loop even though stdin is a pipe; an error in one statement
    # does not end the session.
    r = pp.run("-i", "-c", "x = 41", input="print(x + 1)\n1/0\nprint('after')\n")
    assert r.returncode == 0, r.stderr
    assert "42" in r.stdout
    assert "after" in r.stdout
    assert "ZeroDivisionError" in r.stderr


def test_python_flags_pass_through(pp):
    r = pp.run("-I", "-X", "utf8", "-W", "error", "-c",
               "import sys; print(sys.flags.isolated, sys.flags.utf8_mode)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "1"]


def test_version_flag(pp):
    r = pp.run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"Python {pp.version}"


def test_sys_executable_runs_subprocesses(pp):
    code = textwrap.dedent("""
        import subprocess, sys
        out = subprocess.run([sys.executable, "-c", "import sys, parallel; print(sys.argv[1])",
                              "child"], capture_output=True, text=True, timeout=60)
        print(out.returncode, out.stdout.strip())
    """)
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0 child"


def test_embeds_the_configured_interpreter(pp):
    r = pp.run("-c", "import sys; print(sys.version.split()[0]); print(sys.prefix)")
    assert r.returncode == 0, r.stderr
    version, prefix = r.stdout.split()
    assert version == pp.version
    probe = pp.run("-c", "import sys; print(sys.prefix)", exe=pp.python)
    assert prefix == probe.stdout.strip()


STDLIB_SMOKE = textwrap.dedent("""
    import asyncio, ctypes, ctypes.util, json, sqlite3, ssl, threading, zlib

    assert json.loads(json.dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}

    ctx = ssl.create_default_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ssl.OPENSSL_VERSION

    db = sqlite3.connect(":memory:")
    db.execute("create table t (x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(10)])
    assert db.execute("select sum(x) from t").fetchone()[0] == 45

    data = b"pyparallel " * 1000
    assert zlib.decompress(zlib.compress(data)) == data

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    assert libc.strlen(b"hello") == 5

    results = []
    threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert sorted(results) == [0, 1, 2, 3]

    async def main():
        await asyncio.sleep(0)
        return await asyncio.gather(*(asyncio.sleep(0, result=i) for i in range(3)))
    assert asyncio.run(main()) == [0, 1, 2]
    print("stdlib ok")
""")


def test_stdlib_smoke(pp):
    r = pp.run("-c", STDLIB_SMOKE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stdlib ok"


def test_multiprocessing_spawn_uses_the_host(pp, tmp_path):
    script = tmp_path / "mp.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing as mp, parallel
        def square(x):
            return x * x
        if __name__ == "__main__":
            with mp.get_context("spawn").Pool(2) as pool:
                print(pool.map(square, range(5)))
    """))
    r = pp.run(script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0, 1, 4, 9, 16]"
