"""Helpers shared by the test modules (pytest puts tests/ on sys.path, so they ``import helpers``).

- ``cli``: run_all.py in a subprocess from the repository root, the way a user calls it.
- ``needs_paper`` / ``paper_text``: the paper texts live beside the repository, in ../shared/papers
  (or FGBENCH_PAPERS_DIR). A test that reads one skips where the texts are absent, unless
  FGBENCH_REQUIRE_PAPERS=1, which makes a missing text a failure: set it wherever the texts are
  meant to be there (.ci/run does when it finds the folder), so that a moved or renamed text cannot
  turn the transcription checks into silent skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS = Path(os.environ.get("FGBENCH_PAPERS_DIR") or ROOT.parent / "shared" / "papers")
REQUIRE_PAPERS = os.environ.get("FGBENCH_REQUIRE_PAPERS") == "1"


def cli(*args, env_extra=None, timeout=300, drop_env=None):
    """``python run_all.py ARGS`` in the repository root. The caller's FGBENCH_DATA_ROOT is dropped
    (a test states the data root it means), and so is every variable for which ``drop_env(name)``."""
    env = {k: v for k, v in os.environ.items()
           if k != "FGBENCH_DATA_ROOT" and not (drop_env and drop_env(k))}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "run_all.py", *map(str, args)], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


def paper_path(name: str) -> Path:
    return PAPERS / name


def needs_paper(name: str):
    """Skip mark for a test reading paper text ``name``: skips only where the text is absent and
    FGBENCH_REQUIRE_PAPERS is not 1 (then ``paper_text`` fails the test instead)."""
    return pytest.mark.skipif(not REQUIRE_PAPERS and not paper_path(name).is_file(),
                              reason=f"paper text {paper_path(name)} not found (FGBENCH_REQUIRE_PAPERS=1 "
                                     "makes this a failure)")


def paper_text(name: str) -> str:
    path = paper_path(name)
    if not path.is_file():
        pytest.fail(f"paper text {path} not found, and FGBENCH_REQUIRE_PAPERS=1 requires it "
                    "(set FGBENCH_PAPERS_DIR to the folder that holds the paper texts)")
    return path.read_text()
