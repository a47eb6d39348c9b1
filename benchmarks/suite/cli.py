"""The ``run_all.py`` command line: regenerate tables, list them, plan, report, export."""

from __future__ import annotations

import argparse
import csv
import io
import os
import shlex
import sys
import warnings
from pathlib import Path

from . import claims, registry, runner
from .errors import UserError
from .spec import ALL_VARIANTS, PAPER, SCALES, expand, published_rows

EXAMPLES = """\
examples:
  python run_all.py                                   every table, smoke scale, in this process
  python run_all.py --list                            tables, their cells and run counts
  python run_all.py --tables bacho2024/table1 --scale small --cols MNIST
  python run_all.py --tables bacho2024 --scale full --dry-run     what would run, and its cost
  python run_all.py --tables bacho2024/table1 --rows FDFA --seeds 3   rerun one method
  python run_all.py --report-only --scale small       rebuild reports from results/ only
  python run_all.py --export-published published.csv  every published number as CSV
  python run_all.py --download --data-root DIR --tables bacho2024/table1
                                                      fetch a table's datasets (MNIST, Fashion-MNIST, CIFAR-10)
  python run_all.py --tables bacho2024/table1 --scale screen --variant all --data-root DIR
                                                      screen every fidelity variant (full data, 20 epochs)
  python run_all.py --tables bacho2024/table1 --scale full --variant code --seeds 3 --data-root DIR

Runs already recorded as ok (or diverged) are skipped, failed ones are retried: rerunning the same
command resumes, and beyond smoke scale a run killed mid-way (Ctrl-C, kill -9, a lost session)
continues from its last epoch's checkpoint. Each run being trained is claimed in
<results-dir>/<scale>/.claims/ (host, pid, start time, heartbeat), so several invocations, workers
and SLURM jobs on one results folder split the work and never train a run twice; a claim whose
process is gone, or without a heartbeat for FGBENCH_CLAIM_LEASE_S seconds (default 1800), is taken
over. Records: <results-dir>/<scale>/<paper>/<table>/<run_id>.json. Reports:
<reports-dir>/<scale>/<paper>/<table>.{md,csv,tex,png}, indexed in <reports-dir>/README.md (smoke
scale: <reports-dir>/smoke/README.md, git-ignored like the smoke reports).
Real data: --data-root DIR (or FGBENCH_DATA_ROOT) in torchvision's layout; without it, smoke
runs use packaged MNIST digits or labelled synthetic stand-ins, and small runs use packaged MNIST.
--dry-run, --status and --list work without it: they name the missing datasets and how to get
them. --download fetches MNIST, Fashion-MNIST, CIFAR-10/100 and Imagenette with torchvision's
dataset classes, checks them by content md5 and prints the manual step for ImageNet, ImageNet32
and Tiny ImageNet. Mirrors (a base URL serving the original file names, in place of torchvision's
servers): FGBENCH_MNIST_MIRROR, FGBENCH_FASHION_MNIST_MIRROR, FGBENCH_CIFAR10_MIRROR,
FGBENCH_CIFAR100_MIRROR, FGBENCH_IMAGENETTE_MIRROR.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        sys.stderr.write(f"run_all.py: error: {message} (see python run_all.py --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="run_all.py",
        description="fgbench: regenerate the tables of three forward-gradient papers (Ren et al. 2023, "
                    "Fournier et al. 2023, Bacho & Chu 2024) from declarative specs, and put the "
                    "numbers beside the published ones.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", nargs="+", metavar="ID",
                   help="tables to run, e.g. bacho2024/table1, or a paper prefix like bacho2024 (default: all)")
    p.add_argument("--scale", choices=SCALES, default=None,
                   help="smoke: seconds a cell, pipeline check (default); small: real data, reduced "
                        "epochs/seeds, shows trends on a CPU; screen: full data, the paper's schedule cut "
                        "short, one seed, to choose between fidelity variants (tables with variants only); "
                        "full: the paper's protocol")
    p.add_argument("--variant", metavar="NAME",
                   help=f"fidelity variant: '{PAPER}' (the paper's text), a table's named variants (e.g. "
                        f"'code': the authors' repository; `--list` shows them), or '{ALL_VARIANTS}'. A named "
                        f"variant runs only the cells it changes. Default: each row's chosen variant")
    p.add_argument("--executor", default="local",
                   help="where runs execute: local (this machine, default; see --jobs) or slurm (job arrays "
                        "through submitit; needs --slurm-profile)")
    p.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="local executor: train N runs at once, each in its own worker process (1: one after "
                        "another in this process). Default: one worker per CUDA device, each pinned to its "
                        "device with CUDA_VISIBLE_DEVICES; without GPUs, as many as fill this machine's cores "
                        "at --threads threads a run. A failing run or a dying worker fails only its run")
    p.add_argument("--threads", type=_positive_int, metavar="T",
                   help="local executor: compute threads a run (OMP_NUM_THREADS / torch.set_num_threads in "
                        "each worker). Default: $OMP_NUM_THREADS if set, else the cores shared out among the "
                        "workers (1 a run when the runs fill the cores)")
    p.add_argument("--slurm-profile", metavar="FILE",
                   help="SLURM settings (partition, GPUs, time, packing...), e.g. envs/slurm/example-gpu.yaml")
    p.add_argument("--wait", action="store_true",
                   help="with --executor slurm: follow the jobs until every run has a record "
                        "(default: submit, save a manifest and return)")
    p.add_argument("--status", action="store_true",
                   help="per table: runs pending, running, done, failed (with log paths), then exit")
    p.add_argument("--seeds", type=_positive_int, metavar="N",
                   help="seeds per cell (default: the scale's count; the paper's count at full)")
    p.add_argument("--rows", nargs="+", metavar="ROW", help="only these rows (methods), e.g. FDFA BP")
    p.add_argument("--cols", nargs="+", metavar="COL", help="only these columns (datasets), e.g. MNIST")
    p.add_argument("--list", action="store_true", help="list tables, cell counts and run counts, then exit")
    p.add_argument("--dry-run", action="store_true",
                   help="show the runs that would execute and an estimate of their cost, run nothing")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild reports from existing records, run nothing")
    p.add_argument("--results-dir", default="results", metavar="DIR", help="run records (default: results)")
    p.add_argument("--reports-dir", default="reports", metavar="DIR", help="reports (default: reports)")
    p.add_argument("--data-root", metavar="DIR",
                   help="datasets in torchvision's layout (default: $FGBENCH_DATA_ROOT)")
    p.add_argument("--download", action="store_true",
                   help="fetch the datasets of the selected tables (--tables, --rows, --cols; at --scale if "
                        "given, else at every scale) into --data-root DIR in torchvision's layout, through "
                        "torchvision's dataset classes (MNIST, Fashion-MNIST, CIFAR-10/100, Imagenette), "
                        "checked by content md5; prints the manual step for ImageNet, ImageNet32 and Tiny "
                        "ImageNet. Datasets already there are checked, not fetched again. Mirrors: "
                        "FGBENCH_<DATASET>_MIRROR (see below)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="let small, screen and full runs train from uncommitted code changes (refused by "
                        "default: a number whose code is not in history is not evidence); the diff is "
                        "stored beside each record and reports flag them")
    p.add_argument("--export-published", metavar="FILE",
                   help="write every published number of the selected tables as CSV, then exit")
    return p


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.scale_given = args.scale is not None
    args.scale = args.scale or "smoke"
    try:
        return _main(args)
    except UserError as e:
        sys.stderr.write(f"run_all.py: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\nrun_all.py: interrupted; finished runs are recorded, rerun to resume\n")
        return 130


# Options that take a value: an empty one is a mistake (an unset shell variable), never "the default".
_VALUED = {"tables": "table ids", "rows": "row names", "cols": "column names",
           "slurm_profile": "a FILE", "results_dir": "a folder", "reports_dir": "a folder", "data_root": "a folder",
           "export_published": "a FILE name"}
_ACTIONS = ("list", "dry_run", "status", "report_only", "export_published")


def _check_args(args) -> None:
    """Bad option values and combinations: one UserError before anything is read or written."""
    for key, what in _VALUED.items():
        value = getattr(args, key)
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list) and any(not v.strip() for v in value):
            raise UserError(f"{flag} got an empty value; give {what} (see --list)")
        if isinstance(value, str) and not value.strip():
            raise UserError(f"{flag} got an empty value; give {what}")
    if args.download:
        clash = [a for a in _ACTIONS if getattr(args, a) not in (None, False)]
        if clash:
            raise UserError(f"--download runs on its own; drop --{clash[0].replace('_', '-')} "
                            f"(select datasets with --tables, --rows, --cols and --scale)")


def _main(args) -> int:
    from .executors import get_executor

    _check_args(args)
    specs = registry.select_tables(args.tables)
    if args.variant is not None:
        if not args.variant.strip():
            raise UserError(f"--variant needs a name ('{PAPER}', '{ALL_VARIANTS}' or a table's variant; see --list)")
        runner.tables_with_variant(specs, args.variant)  # unknown name: exit 2 listing the variants
    if args.export_published is not None:
        return _export_published(specs, args.export_published)
    if args.download:
        return _download(specs, args)
    if args.list:
        return _list(specs, args)
    if args.report_only:
        return _report(specs, args)

    from benchmarks import data

    # Fail on a bad executor, SLURM profile or lease before any work.
    executor = get_executor(args.executor, slurm_profile=args.slurm_profile, wait=args.wait, jobs=args.jobs,
                            threads=args.threads)
    claims.lease_seconds()
    data_root = data.data_root_from(args.data_root)
    # Planning (--dry-run, --status) works without the data: runs whose files are missing show the
    # ids they will have, and the datasets are named with how to get them. Training needs them.
    missing = set() if args.dry_run or args.status else None
    runs = runner.plan(specs, args.scale, data_root=data_root, seeds=args.seeds, rows=args.rows, cols=args.cols,
                       variant=args.variant, missing=missing)
    if args.status:
        return _status(runs, args, _missing_lines(missing, runs, args, data_root))
    todo, done = runner.split_done(runs, args.results_dir)
    if args.dry_run:
        return _dry_run(todo, done, args, executor, _missing_lines(missing, runs, args, data_root))
    if not runs:
        raise UserError("the selection has no runs; check --rows/--cols against `--list`")
    if todo and args.scale != "smoke" and not args.allow_dirty:
        changed = runner.changed_code_files()
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise UserError(f"uncommitted code changes ({shown}): commit them so the '{args.scale}' records' "
                            f"code is in history, or pass --allow-dirty (stores the diff beside each record)")
    _writable(args.results_dir)
    _writable(args.reports_dir)
    todo, adopted = runner.adopt_twins(todo, args.results_dir)

    from .progress import Progress

    n_unique = len({r["run_id"] for r in todo})
    reused = f", {len(adopted)} taken from identical runs of other tables" if adopted else ""
    twice = f" ({len(todo) - n_unique} of them identical to another, trained once)" if n_unique < len(todo) else ""
    first, duplicates = runner.first_of_each(todo)
    print(f"{len(runs)} runs at scale '{args.scale}': {len(done)} already recorded{reused}, {len(todo)} to run"
          f"{twice} ({executor.describe(len(first))})", file=sys.stderr)
    warnings.filterwarnings("ignore", category=FutureWarning)
    progress = Progress(len(first), estimates=runner.estimates(first))
    try:
        records = executor.run(first, results_dir=args.results_dir, data_root=data_root, progress=progress)
    finally:
        progress.close()
    left, _ = runner.adopt_twins(duplicates, args.results_dir)  # twins that failed stay to do
    failed = [r for r in records if r["status"] == "failed"]
    _report(specs, args)
    if failed:
        also = f" ({len(left)} identical run(s) of other tables wait for them)" if left else ""
        print(f"{len(failed)} run(s) failed{also}; their records keep the error, and rerunning the same "
              f"command retries them", file=sys.stderr)
        return 1
    return 0


def _writable(path: str) -> None:
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {path!r}: {e.strerror}; choose another folder") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"{path!r} is not writable; choose another folder")


def _render_by_id(table_id: str, scale: str, results_dir, reports_dir, commit: str) -> list:
    from . import report

    (spec,) = registry.select_tables([table_id])
    return report.render_table(spec, scale, results_dir, reports_dir, commit=commit)


def _report(specs, args) -> int:
    from . import report

    runner_commit, _ = runner.git_state()
    ids = [spec.id for spec in runner.tables_with_scale(specs, args.scale)]
    jobs = (args.scale, args.results_dir, args.reports_dir, runner_commit)
    # Each table's plots take seconds of matplotlib (about a minute for every table at smoke), and
    # tables are independent: render them on every core, in table order.
    workers = min(len(ids), os.cpu_count() or 1)
    if workers > 1:
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            parts = list(pool.map(_render_by_id, ids, *([j] * len(ids) for j in jobs)))
    else:
        parts = [_render_by_id(table_id, *jobs) for table_id in ids]
    written = [path for part in parts for path in part]
    # Smoke rows live in the (git-ignored) smoke index: the default job leaves tracked files alone.
    index = report.render_index(registry.all_tables(), args.results_dir, args.reports_dir,
                                smoke=args.scale == "smoke")
    if args.scale == "full":
        # The README's status table follows this checkout's own results only.
        own = Path(args.results_dir).resolve() == runner.REPO_ROOT / "results"
        report.write_reproduction_status(registry.all_tables(), args.results_dir, args.reports_dir,
                                         readme=runner.REPO_ROOT / "README.md" if own else None)
    md = [str(p) for p in written if str(p).endswith(".md")]
    print(f"reports: {', '.join(md) or 'none'}; index: {index}", file=sys.stderr)
    skipped = [(spec.id, name) for spec in runner.tables_with_scale(specs, args.scale)
               for name, _ in report.scan(spec, args.results_dir, args.scale)[1]]
    if skipped:
        tables = ", ".join(dict.fromkeys(t for t, _ in skipped))
        print(f"reports: skipped {len(skipped)} unreadable or malformed record file(s) in {tables}; each "
              f"report's header names them and why", file=sys.stderr)
    return 0


def _download_command(args, data_root: str | None) -> str:
    """The --download command for the current selection (tables, rows, cols, scale if given)."""
    parts = ["python", "run_all.py", "--download", "--data-root", data_root or "DIR"]
    for flag, values in (("--tables", args.tables), ("--rows", args.rows), ("--cols", args.cols)):
        if values:
            parts += [flag, *values]
    if args.scale_given:
        parts += ["--scale", args.scale]
    return " ".join(p if p == "DIR" else shlex.quote(p) for p in parts)


def _missing_lines(missing, runs, args, data_root: str | None, for_runs: bool = True) -> list[str]:
    """Lines naming datasets not under the data root: one --download command for those it fetches,
    the manual step for each other one."""
    from benchmarks import data

    if not missing:
        return []
    names = [n for n in data.DATASETS if n in missing]
    where = f"data root {data_root}" if data_root else "a data root (none given: --data-root DIR or FGBENCH_DATA_ROOT)"
    lines = [f"missing data: {', '.join(names)} not found under {where}"]
    if for_runs:
        n = sum(bool(r.get("data_missing")) for r in runs)
        lines[0] += (f"; the {n} run(s) marked 'missing' show the run ids they will have, and cannot train "
                     f"until the data is there")
    fetch = [n for n in names if n in data.DOWNLOADABLE]
    if fetch:
        lines.append(f"  {', '.join(fetch)}: fetch with {_download_command(args, data_root)}")
    for n in names:
        if n in data.MANUAL:
            lines.append(f"  {n}: manual step: {data.manual_step(n, data_root)}")
    return lines


def _download(specs, args) -> int:
    from benchmarks import data

    value = args.data_root or os.environ.get(data.ENV_VAR) or None
    if value is None:
        raise UserError(f"--download needs --data-root DIR (or {data.ENV_VAR}): the folder to put the datasets in")
    root = os.path.expanduser(value)
    if os.path.exists(root) and not os.path.isdir(root):
        raise UserError(f"data root {value!r} is a file, not a folder; choose a folder for --download")
    wanted = runner.datasets_of(specs, args.scale if args.scale_given else None, rows=args.rows, cols=args.cols)
    names = [n for n in data.DATASETS if n in wanted and n not in data.PACKAGED]
    if not names:
        print("the selected cells read no dataset files (simulations or packaged data); nothing to download")
        return 0
    created = not os.path.exists(root)
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create data root {value!r}: {e.strerror}; choose another folder") from None
    if not os.access(root, os.W_OK):
        raise UserError(f"data root {value!r} is not writable; choose another folder")
    print(f"datasets of the selection: {', '.join(names)}; data root {root}")
    try:
        manual = data.download(names, root, log=lambda line: print(line, flush=True))
    except BaseException:
        if created:
            try:
                os.rmdir(root)  # only if nothing landed in it
            except OSError:
                pass
        raise
    for n in manual:
        print(f"{n}: manual step: {data.manual_step(n, root)}")
    ready = [n for n in names if n not in manual]
    print(f"ready under {root}: {', '.join(ready) or 'none'}"
          + (f"; {len(manual)} need the manual step above: {', '.join(manual)}" if manual else "")
          + f". Use it with --data-root {shlex.quote(root)} (or {data.ENV_VAR}={shlex.quote(root)})")
    return 0


def _list(specs, args) -> int:
    print(f"{'table':24} {'cells':>5} {'published':>9}  runs smoke/small/screen/full  title")
    for s in specs:
        n_pub = sum(len(c.published) for c in s.cells)
        counts = "/".join(str(len(expand(s, sc))) if sc in s.scales else "-" for sc in SCALES)
        print(f"{s.id:24} {len(s.cells):5d} {n_pub:9d}  {counts:>27}  {s.title}")
    with_variants = [s for s in specs if s.variants]
    if with_variants:
        print("\nfidelity variants (--variant NAME; 'paper' is the text, the baseline; '*' marks rows' defaults):")
        for s in with_variants:
            chosen = {s.chosen_variant(r) for r in s.rows}
            print(f"  {s.id}:")
            print(f"    {PAPER + ('*' if PAPER in chosen else ''):12} the paper's text")
            for v in s.variants:
                cells = len(expand(s, "full", seeds=1, variant=v.name))
                print(f"    {v.name + ('*' if v.name in chosen else ''):12} {v.summary} ({cells} of {len(s.cells)} cells)")
    _list_datasets(specs, args)
    return 0


def _list_datasets(specs, args) -> None:
    """The datasets the listed tables read, whether the data root has them, and how to get the others."""
    from benchmarks import data
    from benchmarks.data import _files

    root = data.data_root_from(args.data_root)
    wanted = runner.datasets_of(specs)
    names = [n for n in data.DATASETS if n in wanted]
    if not names:
        return
    print(f"\ndatasets (data root: {root or 'none given; --data-root DIR or FGBENCH_DATA_ROOT'}; smoke runs "
          f"stand in for missing ones, full runs need every dataset their cells read; `--dry-run --scale S` "
          f"shows which runs lack data):")
    missing = set()
    for n in names:
        if n in data.PACKAGED:
            state = "packaged"
        elif _files.found_folder(n, root):
            state = f"present ({_files.found_folder(n, root)}/)"
        else:
            state = "missing"
            missing.add(n)
        by_paper: dict[str, list[str]] = {}
        for t in wanted[n]:
            paper, _, table = t.partition("/")
            by_paper.setdefault(paper, []).append(table)
        print(f"  {n:14} {state:24} " + "; ".join(f"{p}: {', '.join(ts)}" for p, ts in by_paper.items()))
    for line in _missing_lines(missing, [], args, root, for_runs=False)[1:]:
        print(line)


def _status(runs, args, missing_lines=()) -> int:
    from .slurm import status

    rows = status(runs, args.results_dir)
    print(f"{'table':22} {'pending':>7} {'running':>7} {'done':>5} {'failed':>6} {'not submitted':>13}  (scale {args.scale})")
    for r in rows:
        print(f"{r['table']:22} {r['pending']:7d} {r['running']:7d} {r['done']:5d} {r['failed']:6d} {r['not submitted']:13d}")
        for line in r["logs"]:
            print(f"    failed {line}")
    for line in missing_lines:
        print(line)
    return 0


def _dry_run(todo, done, args, executor, missing_lines=()) -> int:
    seconds = runner.estimate_seconds(todo)
    done_ids = {(r["table"], r["run_id"]) for r in done}
    print(f"scale {args.scale}, executor {args.executor}: {len(todo) + len(done)} runs, "
          f"{len(done)} already recorded, {len(todo)} to run")
    print(f"{'table':22} {'row':10} {'col':14} {'seed':>4}  {'variant':10} {'run_id':12}  {'data':11} status")
    twins = {(r["table"], r["run_id"]) for r in todo if runner.finished_twin(args.results_dir, r)}
    seconds -= runner.estimate_seconds([r for r in todo if (r["table"], r["run_id"]) in twins])
    for r in sorted(todo + done, key=lambda r: (r["table"], r["row"], r["col"], r.get("variant", PAPER), r["seed"])):
        key = (r["table"], r["run_id"])
        status = "done" if key in done_ids else "reuse (same run in another table)" if key in twins else "to run"
        print(f"{r['table']:22} {r['row']:10} {r['col']:14} {r['seed']:4d}  {r.get('variant', PAPER):10} {r['run_id']:12}  "
              f"{'missing' if r.get('data_missing') else r['config'].get('data_source') or 'simulated':11} {status}")
    print(f"estimated cost of the runs to do: {_fmt_duration(seconds)} on this machine's CPU "
          f"(rough, from model size, data size and epochs)")
    if executor.name == "local" and todo:
        n = len(runner.first_of_each(todo)[0])
        print(f"{executor.describe(n)}: about {_fmt_duration(seconds / executor.workers(n))} of wall time "
              f"(--jobs, --threads)")
    if executor.name == "slurm":
        from .slurm import chunks, sbatch_summary

        prof = executor.profile
        unique, _ = runner.first_of_each([r for r in todo if (r["table"], r["run_id"]) not in twins])
        for table in dict.fromkeys(r["table"] for r in unique):
            n = len(chunks([r for r in unique if r["table"] == table], prof["runs_per_job"]))
            print(f"sbatch {table}: {sbatch_summary(prof, n)}")
        gpus = max(prof["gpus_per_task"], 0)
        hours = seconds / prof["gpu_speedup"] / 3600
        print(f"estimated {'GPU' if gpus else 'CPU-job'}-hours: {hours * max(gpus, 1):.1f} "
              f"(CPU estimate / gpu_speedup {prof['gpu_speedup']} from profile {prof['name']!r})")
    for line in missing_lines:
        print(line)
    return 0


def _fmt_duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _export_published(specs, path: str) -> int:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["table", "row", "col", "metric", "value", "std"], lineterminator="\n")
    w.writeheader()
    n = 0
    for s in specs:
        for row in published_rows(s):
            w.writerow(row)
            n += 1
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise UserError(f"folder {str(target.parent)!r} does not exist; create it or choose another FILE")
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(buf.getvalue())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path!r}: {e.strerror}") from None
    print(f"wrote {n} published numbers of {len(specs)} tables to {path}", file=sys.stderr)
    return 0
