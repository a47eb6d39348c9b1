"""The Ren engine keeps XLA programs on disk, so another process (a --jobs worker, the next
invocation) loads a step instead of compiling it again (smoke Ren LG-FG-A, 3 runs: 63 s cold,
17 s warm on the 2-core development machine)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = """
import jax, jax.numpy as jnp
from benchmarks.ren2023.training import enable_compilation_cache
print("dir", enable_compilation_cache())
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() * 3.0 + jnp.sin(x).mean())
print("value", float(f(jnp.arange(12.0).reshape(3, 4))))
"""


def _probe(cache):
    env = {**os.environ, "FGBENCH_JAX_CACHE": str(cache), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    return lines["dir"], lines["value"]


def test_a_second_process_finds_the_compiled_program_on_disk_and_computes_the_same(tmp_path):
    cache = tmp_path / "jax"
    where, first = _probe(cache)
    assert where == str(cache)
    written = {name: os.stat(cache / name).st_mtime_ns for name in os.listdir(cache)}
    assert written, "the first process wrote no compiled program"
    where, second = _probe(cache)
    assert second == first
    # found and loaded: nothing compiled and written again
    assert {name: os.stat(cache / name).st_mtime_ns for name in os.listdir(cache)} == written


@pytest.mark.parametrize("value,expected", [("off", None), ("OFF", None), ("0", None), ("/x/y", "/x/y")])
def test_the_cache_folder_comes_from_the_environment_and_can_be_switched_off(monkeypatch, value, expected):
    from benchmarks.ren2023.training import CACHE_ENV, compilation_cache_dir

    monkeypatch.setenv(CACHE_ENV, value)
    assert compilation_cache_dir() == expected
    monkeypatch.delenv(CACHE_ENV)
    assert compilation_cache_dir().endswith(os.path.join(".cache", "fgbench", "jax"))
