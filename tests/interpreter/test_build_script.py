"""interpreter/cpython/build-cpython.sh: options, the patch series, and the cache.

These run the script on a tiny fake CPython tarball with a private cache folder, so they
never build CPython; only the last test looks at the real cache, when there is one.
"""
import os
import pathlib
import subprocess
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "interpreter" / "cpython" / "build-cpython.sh"


def run(*args, env=None, timeout=120):
    full = dict(os.environ)
    for name in ("PP_CPYTHON_TARBALL", "PP_CPYTHON_OPT", "PP_CPYTHON_PATCHDIR",
                 "PYPARALLEL_CACHE_DIR", "PP_DEBIAN_MIRROR", "PP_APT_ETC"):
        full.pop(name, None)
    full.update(env or {})
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, env=full, timeout=timeout)


@pytest.fixture
def fake_source(tmp_path):
    """A tarball shaped like CPython 3.13.99 whose configure always fails."""
    top = tmp_path / "src" / "Python-3.13.99"
    (top / "Include").mkdir(parents=True)
    (top / "Include" / "patchlevel.h").write_text('#define PY_VERSION "3.13.99"\n')
    (top / "hello.txt").write_text("hello\n")
    configure = top / "configure"
    configure.write_text("#!/bin/sh\necho fake configure; exit 1\n")
    configure.chmod(0o755)
    tarball = tmp_path / "Python-3.13.99.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(top, arcname="Python-3.13.99")
    return tarball


def patch_text(old, new):
    return (f"Reason: test patch.\n--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n"
            f"-{old}\n+{new}\n")


def env_for(tmp_path, tarball, patches):
    return {"PP_CPYTHON_TARBALL": str(tarball), "PYPARALLEL_CACHE_DIR": str(tmp_path / "cache"),
            "PP_CPYTHON_PATCHDIR": str(patches)}


def test_patches_apply_in_order(tmp_path, fake_source):
    patches = tmp_path / "patches"
    patches.mkdir()
    # The second patch only applies on top of the first.
    (patches / "0001-first.patch").write_text(patch_text("hello", "hello, parallel"))
    (patches / "0002-second.patch").write_text(patch_text("hello, parallel", "hello, world"))
    (patches / "series").write_text("# comment\n0001-first.patch\n\n0002-second.patch\n")
    r = run(env=env_for(tmp_path, fake_source, patches))
    assert r.returncode != 0
    assert r.stderr.index("applying patches/0001-first.patch") < \
        r.stderr.index("applying patches/0002-second.patch")
    assert "configure failed" in r.stderr  # got past both patches to the (fake) configure
    assert r.stdout == ""  # no interpreter path printed on failure


def test_a_patch_that_does_not_apply_stops_the_build(tmp_path, fake_source):
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-stale.patch").write_text(patch_text("goodbye", "hello"))
    (patches / "series").write_text("0001-stale.patch\n")
    r = run(env=env_for(tmp_path, fake_source, patches))
    assert r.returncode != 0
    assert "patch patches/0001-stale.patch does not apply to CPython 3.13.99" in r.stderr
    assert "configure" not in r.stderr


def test_a_series_entry_without_its_file_is_an_error(tmp_path, fake_source):
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "series").write_text("0001-missing.patch\n")
    r = run(env=env_for(tmp_path, fake_source, patches))
    assert r.returncode != 0
    assert "names '0001-missing.patch'" in r.stderr


def test_print_path_on_an_empty_cache(tmp_path):
    r = run("--print-path", env={"PYPARALLEL_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 1 and r.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--opt", "fast"], "--opt must be none, pgo, lto, pgo-lto or tsan"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["--tarball", "/nonexistent.tar.xz"], "not found"),
])
def test_bad_options(args, message):
    r = run(*args)
    assert r.returncode != 0
    assert message in r.stderr


def test_checksum_file_names_the_debian_tarball():
    lines = [line for line in (ROOT / "interpreter" / "cpython" / "cpython-source.sha256").read_text()
             .splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    digest, name = lines[0].split()
    assert len(digest) == 64 and name.startswith("python3.13_3.13.")


def test_the_cache_is_reused_in_seconds():
    cached = run("--print-path")
    if cached.returncode != 0:
        pytest.skip("no cached interpreter yet (run interpreter/cpython/build-cpython.sh)")
    start = time.monotonic()
    r = run()
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start < 10
    assert r.stdout.strip().splitlines()[-1] == cached.stdout.strip()


# --- where the source comes from: the machine's own apt sources ---------------------------
def apt_etc(tmp_path, files):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


@pytest.mark.parametrize("files, expected", [
    # deb822, the security archive listed first: it is skipped
    ({"sources.list.d/debian.sources":
      "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\n\n"
      "Types: deb\nURIs: http://mirror.test/debian/\nSuites: bookworm bookworm-updates\n"},
     "http://mirror.test/debian"),
    # one-line format with options and a comment
    ({"sources.list": "# deb http://old.test/debian bookworm main\n"
                      "deb [signed-by=/k.gpg] http://proxy.test:3142/debian bookworm main\n"
                      "deb http://proxy.test:3142/security bookworm-security main\n"},
     "http://proxy.test:3142/debian"),
])
def test_mirror_comes_from_apt_sources(tmp_path, files, expected):
    r = run("--print-mirror", env={"PP_APT_ETC": apt_etc(tmp_path, files)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected


def test_mirror_override_and_missing_sources(tmp_path):
    r = run("--print-mirror", env={"PP_APT_ETC": tmp_path / "none",
                                   "PP_DEBIAN_MIRROR": "http://local.test/debian/"})
    assert r.returncode == 0 and r.stdout.strip() == "http://local.test/debian"
    r = run("--print-mirror", env={"PP_APT_ETC": tmp_path / "none"})
    assert r.returncode != 0
    assert "no Debian archive in this machine's apt sources; set PP_DEBIAN_MIRROR" in r.stderr


def test_no_archive_host_is_written_in_the_script():
    text = SCRIPT.read_text()
    assert "://" not in text  # no archive address: it comes from the apt sources
