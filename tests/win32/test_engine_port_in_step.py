"""The Windows engine suite (tests/win32/test_iocp_loop.cpp) is a Winsock port of the generic
part of tests/engine/test_loop.cpp. This checks, on any OS, that the port has every case of
the original, so a case added there cannot silently miss IOCP. Only the cases whose Windows
form differs by design may have another name here (each is explained in the port).
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
CASE = re.compile(r'TEST_CASE\(\s*"((?:[^"\\]|\\.)*)"', re.S)
# POSIX name -> Windows name: no SIGPIPE on Windows (see the case's comment in the port).
RENAMED = {
    "sendfile to a vanished peer is -EPIPE, never a SIGPIPE, whatever its disposition":
        "sendfile to a vanished peer fails that sendfile and every later one",
}


def generic_cases(text: str) -> list[str]:
    start = text.index("// accept\n")
    end = text.index("// libaio:")
    return CASE.findall(text[start:end])


def test_every_generic_engine_case_has_a_windows_port():
    posix = generic_cases((ROOT / "tests" / "engine" / "test_loop.cpp").read_text())
    port = set(CASE.findall((ROOT / "tests" / "win32" / "test_iocp_loop.cpp").read_text()))
    assert len(posix) >= 25  # the markers still bracket the generic cases
    missing = [RENAMED.get(name, name) for name in posix if RENAMED.get(name, name) not in port]
    assert not missing, f"cases of tests/engine/test_loop.cpp missing from the Windows port: {missing}"
