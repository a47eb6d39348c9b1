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


LEVELS_PROBE = """
import jax.numpy as jnp
from benchmarks.ren2023.training import _jit, enable_compilation_cache
enable_compilation_cache()
f = lambda x: jnp.tanh(x @ x.T).sum() * 3.0 + jnp.sin(x).mean()
x = jnp.arange(12.0).reshape(3, 4)
print(float(_jit(f, {})(x)), float(_jit(f, {"xla_opt_level": 0})(x)))
"""


def test_the_smoke_compile_level_reaches_xla_and_computes_the_same(tmp_path):
    # The level is part of XLA's compile options, hence of the cache key: two levels, two programs.
    # A _jit that dropped the option would compile (and write) one.
    env = {**os.environ, "FGBENCH_JAX_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", LEVELS_PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    default, level0 = map(float, out.stdout.split())
    assert level0 == pytest.approx(default, rel=1e-6)
    programs = [n for n in os.listdir(tmp_path) if "jit__lambda" in n or "lambda" in n]
    assert len(programs) == 2, os.listdir(tmp_path)


def test_only_smoke_runs_lower_the_compile_level():
    from benchmarks.suite.registry import select_tables
    from benchmarks.suite.runner import plan

    specs = [s for s in select_tables(["ren2023"]) if s.id != "ren2023/fig8"]
    for scale, expected in (("smoke", {0}), ("small", {None}), ("full", {None})):
        runs = plan(specs, scale, data_root=None, missing=set())
        assert runs and {r["config"].get("xla_opt_level") for r in runs} == expected, scale


@pytest.mark.parametrize("bad", [4, -1, True, "0", 1.0])
def test_a_bad_compile_level_is_refused(bad):
    from benchmarks.ren2023.config import validate_config
    from benchmarks.suite.errors import SpecError
    from benchmarks.suite.registry import select_tables
    from benchmarks.suite.runner import plan

    config = plan(select_tables(["ren2023/table3"]), "smoke", data_root=None, missing=set())[0]["config"]
    validate_config(config)
    with pytest.raises(SpecError, match="'xla_opt_level' must be an integer from 0 to 3"):
        validate_config({**config, "xla_opt_level": bad})
