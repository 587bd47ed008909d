"""The option table (core/options.h) drives every way in: the host's flags, the
environment, run()'s keywords, parallel._options(), --help, parallel.serve and
pyparallel-httpd. Each option is read by one parser and refused in one wording."""
import json
import re
import socket

import pytest

from pptest import free_port

TABLE = "import json, parallel; print(json.dumps(parallel._option_table()))"

# A good and a bad text for every option, and the value Python sees for the good one.
CASES = {
    "workers": ("3", 3, "-1"),
    "backend": ("epoll", "epoll", "carrier-pigeon"),
    "numa_policy": ("0-1", "0-1", "3-1"),
    "metrics_port": ("9180", "127.0.0.1:9180", "host:"),
    "share_main_data": ("off", False, "maybe"),
    "log_level": ("warning", "warning", "loud"),
    "access_log": ("off", False, "maybe"),
    "access_log_file": ("/tmp/pp-access.log", "/tmp/pp-access.log", "/tmp/"),
    "header_timeout": ("0.5", 0.5, "soon"),
    "keepalive_timeout": ("7", 7.0, "-1"),
    "body_timeout": ("8", 8.0, "nan"),
    "send_timeout": ("9", 9.0, "1e9"),
    "drain_timeout": ("1.5", 1.5, "x"),
    "max_body": ("2k", 2048, "0"),
    "max_header_bytes": ("1m", 1 << 20, "1x"),
    "max_connections": ("9", 9, "many"),
}


def table_of(pp) -> dict:
    r = pp.run("-c", TABLE)
    assert r.returncode == 0, r.stderr
    return {row["keyword"]: row for row in json.loads(r.stdout)}


def options_of(r) -> dict:
    """parallel._options() printed as JSON, the limits flattened in."""
    assert r.returncode == 0, r.stderr
    opts = json.loads(r.stdout.strip().splitlines()[-1])
    return {**opts, **opts.pop("limits")}


OPTIONS = "import json, parallel; print(json.dumps(parallel._options()))"


def test_table_rows_are_every_option(pp):
    rows = table_of(pp)
    assert set(rows) == set(CASES)
    for keyword, row in rows.items():
        assert row["flag"] == "--" + keyword.replace("_", "-")
        assert row["environment"] == "PYPARALLEL_" + keyword.upper()
        assert "run" in row["users"] and row["help"]
    # The backends are the build's for this OS, not a list written by hand.
    assert rows["backend"]["choices"] == ["auto", "io_uring", "libaio", "epoll"]
    assert rows["log_level"]["choices"] == ["trace", "debug", "info", "warning", "error",
                                            "critical"]
    assert rows["workers"]["default"] == "one per CPU" and rows["max_body"]["default"] == "1048576"


def test_flag_variable_and_keyword_read_a_value_alike(pp):
    flags = [f"{'--' + k.replace('_', '-')}={good}" for k, (good, _, _) in CASES.items()]
    env = {"PYPARALLEL_" + k.upper(): good for k, (good, _, _) in CASES.items()}
    expected = {k: value for k, (_, value, _) in CASES.items()}
    by_flag = options_of(pp.run(*flags, "-c", OPTIONS))
    by_env = options_of(pp.run("-c", OPTIONS, env=env))
    parse = ("import json, parallel, sys\n"
             "cases = json.loads(sys.argv[1])\n"
             "print(json.dumps({k: parallel._parse_option(k, t) for k, t in cases.items()}))\n")
    r = pp.run("-c", parse, json.dumps({k: good for k, (good, _, _) in CASES.items()}))
    assert r.returncode == 0, r.stderr
    by_keyword = json.loads(r.stdout)
    for keyword, value in expected.items():
        assert by_flag[keyword] == by_env[keyword] == by_keyword[keyword] == value, keyword
    assert by_flag["origin"] == {"workers": "command line", "backend": "command line",
                                 "numa_policy": "command line"}
    assert set(by_env["origin"].values()) == {"environment"}


def test_run_takes_the_values_its_flags_take(pp):
    # run()'s keywords go through the same parser: text and numbers alike.
    port = free_port()
    code = ("import parallel\n"
            "parallel.timer(0.2, 0, parallel.stop)\n"
            f"parallel.run(workers=0, backend='epoll', metrics_port='{port}', max_body='2k',\n"
            "             header_timeout='0.5', max_connections=9, share_main_data=False)\n"
            "print('returned')\n")
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "returned"
    assert "backend epoll: requested" in r.stderr, r.stderr
    assert f"metrics on http://127.0.0.1:{port}/metrics" in r.stderr, r.stderr


def error_text(stderr: str) -> str:
    """The host's error line: "<name> expects ..." after "error: "."""
    m = re.search(r"error: (.*)", stderr)
    assert m, stderr
    return m.group(1)


def test_flag_variable_and_keyword_refuse_a_value_in_one_wording(pp):
    rows = table_of(pp)
    check = ("import json, parallel, sys\n"
             "out = {}\n"
             "for k, bad in json.loads(sys.argv[1]).items():\n"
             "    try:\n"
             "        parallel.run(**{k: bad})\n"
             "    except (TypeError, ValueError) as e:\n"
             "        out[k] = [type(e).__name__, str(e)]\n"
             "print(json.dumps(out))\n")
    r = pp.run("-c", check, json.dumps({k: bad for k, (_, _, bad) in CASES.items()}))
    assert r.returncode == 0, r.stderr
    by_keyword = json.loads(r.stdout)
    for keyword, (_, _, bad) in CASES.items():
        row = rows[keyword]
        flag = pp.run(f"{row['flag']}={bad}", "-c", "print('ran')")
        env = pp.run("-c", "print('ran')", env={row["environment"]: bad})
        assert flag.returncode == env.returncode == 2, (flag.stderr, env.stderr)
        assert "ran" not in flag.stdout + env.stdout
        by_flag, by_env = error_text(flag.stderr), error_text(env.stderr)
        assert by_flag.startswith(row["flag"] + " expects "), by_flag
        assert by_env.startswith(row["environment"] + " expects "), by_env
        words = by_flag[len(row["flag"]):]
        assert by_env[len(row["environment"]):] == words
        assert f"got '{bad}'" in words
        kind, message = by_keyword[keyword]
        if row["type"] == "on_off":
            # A keyword takes True or False, not the flag's text.
            assert (kind, message) == ("TypeError",
                                       f"{keyword} expects True or False, got '{bad}'")
        else:
            assert (kind, message) == ("ValueError", keyword + words), message


def test_keyword_of_the_wrong_kind_and_unknown_keyword(pp):
    code = ("import parallel\n"
            "for kw in ({'workers': True}, {'max_body': [1]}, {'wrokers': 2}):\n"
            "    try:\n"
            "        parallel.run(**kw)\n"
            "    except TypeError as e:\n"
            "        print(e)\n")
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "workers expects an int, a float or a str, got bool",
        "max_body expects an int, a float or a str, got list",
        "run() got an unexpected keyword argument 'wrokers'",
    ]


def test_help_lists_every_row(pp):
    rows = table_of(pp)
    r = pp.run("--help")
    assert r.returncode == 0
    for row in rows.values():
        assert f"{row['flag']} {row['metavar']}" in r.stdout, row["flag"]
        assert row["environment"] in r.stdout
    assert "auto, io_uring, libaio, epoll" in r.stdout


def test_serve_flags_come_from_the_table(pp):
    rows = table_of(pp)
    r = pp.run("-m", "parallel.serve", "--help")
    assert r.returncode == 0, r.stderr
    for row in rows.values():
        assert row["flag"] in r.stdout and row["environment"] in r.stdout, row["flag"]
    # A value is read by the table's parser: the host's wording, argparse's exit status.
    r = pp.run("-m", "parallel.serve", "some.module:app", "--max-body", "1x")
    assert r.returncode == 2
    assert ("argument --max-body: expects a byte count from 1 to 1t (k/m/g suffixes "
            "allowed), got '1x'") in r.stderr, r.stderr
    code = ("from parallel import serve\n"
            "a = serve._parser(serve._table_rows()).parse_args(\n"
            "    ['m:app', '--max-body', '2k', '--share-main-data', 'off', '--workers', '3',\n"
            "     '--metrics-port', '0.0.0.0:9'])\n"
            "print(a.max_body, a.share_main_data, a.workers, a.metrics_port, a.backend)\n")
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2048", "False", "3", "0.0.0.0:9", "None"]


def test_httpd_help_and_variables_come_from_the_table(pp):
    httpd = pp.folder / "httpd" / "pyparallel-httpd"
    if not httpd.exists():
        pytest.skip(f"{httpd} not built")
    rows = table_of(pp)
    r = pp.run("--help", exe=httpd)
    assert r.returncode == 0, r.stderr
    for row in rows.values():
        shown = row["flag"] in r.stdout and row["environment"] in r.stdout
        assert shown == ("httpd" in row["users"]), row["flag"]
    assert "--share-main-data" not in r.stdout
    # Its --workers 0 is one per CPU: it has no main-thread mode, and says so.
    bad = pp.run("--workers", "x", exe=httpd)
    assert bad.returncode == 2
    assert "--workers expects a whole number from 0 (one per CPU) to 4096, got 'x'" in bad.stderr
    bad = pp.run(exe=httpd, env={"PYPARALLEL_MAX_CONNECTIONS": "many"})
    assert bad.returncode == 2
    assert "PYPARALLEL_MAX_CONNECTIONS expects a whole number" in bad.stderr


# A run whose timer callback raises: one info line (where callbacks run), one error (the
# callback's traceback), then a stop.
LOUD_RUN = ("import parallel\n"
            "def boom():\n"
            "    raise RuntimeError('boom-marker')\n"
            "parallel.timer(0.05, 0, boom)\n"
            "parallel.timer(0.3, 0, parallel.stop)\n"
            "parallel.run(workers=0{keyword})\n"
            "print('returned')\n")
INFO_LINE = "callbacks run on the main thread"


@pytest.mark.parametrize("how, level, info, error", [
    ("default", None, True, True),
    ("flag", "warning", False, True),
    ("flag", "debug", True, True),
    ("variable", "error", False, True),
    ("variable", "critical", False, False),
    ("keyword", "critical", False, False),
])
def test_log_level_filters_the_servers_own_messages(pp, how, level, info, error):
    args, env, keyword = [], {}, ""
    if how == "flag":
        args = ["--log-level", level]
    elif how == "variable":
        env = {"PYPARALLEL_LOG_LEVEL": level}
    elif how == "keyword":
        keyword = f", log_level={level!r}"
    r = pp.run(*args, "-c", LOUD_RUN.format(keyword=keyword), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "returned"  # the callback failed; the run went on
    assert (INFO_LINE in r.stderr) == info, r.stderr
    assert ("boom-marker" in r.stderr) == error, r.stderr


def test_log_level_keyword_holds_for_one_run(pp):
    # run(log_level=) is this run's; the next run() is back at the process's level.
    code = ("import parallel\n"
            "for level in ('critical', None):\n"
            "    parallel.timer(0.1, 0, parallel.stop)\n"
            "    parallel.run(workers=0, log_level=level)\n")
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(INFO_LINE) == 1, r.stderr


def test_httpd_log_level(pp):
    httpd = pp.folder / "httpd" / "pyparallel-httpd"
    if not httpd.exists():
        pytest.skip(f"{httpd} not built")
    # A fatal start-up error is written at every level: the user must learn why it exited.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        r = pp.run("--log-level", "critical", "--port", str(port), "--host", "127.0.0.1",
                   exe=httpd, env={"PYPARALLEL_BACKEND": "epoll"})
    finally:
        busy.close()
    assert r.returncode != 0
    assert str(port) in r.stderr, r.stderr
    bad = pp.run("--log-level", "loud", exe=httpd)
    assert bad.returncode == 2
    assert ("--log-level expects trace, debug, info, warning, error or critical, got 'loud'"
            in bad.stderr)
