"""Command line: `python -m rnnlab train|sweep|tune|runs ...` (also installed as `rnnlab`).

Every RunConfig field is an option (hidden_size -> --hidden-size); `sweep` takes comma
lists (--cell rnn,lstm) and trains the grid they make, on this machine's worker pool or,
with `--executor ray`, on Ray (a local runtime, or the cluster at --ray-address; Ray is
an optional extra, imported only then). `tune` searches several settings at once with
Optuna (rnnlab.tune). `train`, `sweep` and `tune` record their
runs in the run store ($RNNLAB_HOME/runs.sqlite); `runs` lists, shows, exports, deletes
and pins them, and `runs prune` keeps the store within its disk budget. Invalid options
or values exit with status 2 and one line on stderr; a run
that ends in any status exits 0, except that Ctrl-C stops a run (or a sweep's runs) at
its next step, records and prints what it reached, and exits 130; a second Ctrl-C quits
at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .cluster import ClusterError
from .config import ConfigError, RunConfig
from .downloads import weights_file_bytes
from .jobs import JobManager
from .recording import RecordedRun
from .store import (
    EXPORT_FORMATS,
    STATUSES,
    PruneReport,
    RetentionPolicy,
    RunRecord,
    RunStore,
    StoreError,
    open_store,
)
from .sweep import SWEEPABLE, Grid, LocalExecutor, RayExecutor, RunResult, SweepResult, run_sweep
from .tasks import make_task
from .train import Evaluation, Finished, Step, resolve_device
from .weights import WeightsError

MAX_WORKERS = 64
MAX_TRIALS = 1000
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(message)


def fail(message: str) -> None:
    print(f"rnnlab: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field, with its range or choices in the help text."""
    for f in dataclasses.fields(RunConfig):
        help_text = f.metadata.get("help", "")
        if "range" in f.metadata:
            lo, hi = f.metadata["range"]
            help_text += f" ({lo:g}..{hi:g}, default {f.default})"
        elif "choices" in f.metadata:
            help_text += f" ({' | '.join(f.metadata['choices'])}, default {f.default})"
        if f.type == "bool":
            parser.add_argument(_option(f.name), action="store_true", help=help_text)
        else:
            parser.add_argument(_option(f.name), metavar="VALUE", help=help_text)


def add_pool_options(parser: argparse.ArgumentParser) -> None:
    """Where a sweep's or a study's runs train: --workers, --executor, --ray-address."""
    parser.add_argument(
        "--workers",
        metavar="N",
        help="training processes (default: RNNLAB_WORKERS, else one per core)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="train on this machine's worker pool (default), or as Ray tasks",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to train on (HOST:PORT, ray://HOST:PORT or auto; "
        "default: a local Ray runtime started for the command)",
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the options describe (defaults for the rest); exits 2 if invalid."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(RunConfig):
        value = getattr(args, f.name)
        if f.type == "bool":
            if value:
                values[f.name] = True
        elif value is not None:
            values[f.name] = value
    try:
        return RunConfig.from_strings(values)
    except ConfigError as error:
        fail(str(error))


def _progress_bar(total: int, unit: str = "step"):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr)


def _open_store() -> RunStore:
    """The run store, or exit 2 with why it cannot be opened."""
    try:
        return open_store()
    except StoreError as error:
        fail(str(error))


def command_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        resolve_device(config.device)
        task = make_task(config)
    except ConfigError as error:
        fail(str(error))
    store = _open_store()
    run_id = store.create_run(config, owner="cli", status="running")
    run = RecordedRun(store, run_id, config, task=task)
    bar = _progress_bar(config.steps)
    summary: dict[str, Any] = {}
    with _stopped_by_ctrl_c(lambda: run.stop("stopped with Ctrl-C"), "the run") as pressed:
        try:
            for event in run:
                if bar is not None and isinstance(event, Step):
                    bar.update(event.step - bar.n)
                    bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
                elif bar is not None and isinstance(event, Evaluation):
                    bar.set_postfix(loss=f"{event.loss:.4f}", held_out=f"{event.metric:.4f}")
                elif isinstance(event, Finished):
                    summary = event.summary
        except KeyboardInterrupt:
            store.finish(run_id, "interrupted", error="quit with a second Ctrl-C")
            print(f"rnnlab: run {run_id} interrupted; what it recorded is kept", file=sys.stderr)
            return INTERRUPTED
        except Exception:
            print(f"rnnlab: run {run_id} failed: {run.outcome['error']}", file=sys.stderr)
            return 1
        finally:
            if bar is not None:
                bar.close()
    if args.json:
        print(json.dumps({"run_id": run_id, **summary}))
    else:
        print(format_summary(summary))
        print(f"run {run_id} saved; see it with: rnnlab runs show {run_id}")
    return INTERRUPTED if pressed.is_set() else 0


@contextlib.contextmanager
def _stopped_by_ctrl_c(stop: Callable[[], None], what: str) -> Iterator[threading.Event]:
    """While inside, the first Ctrl-C calls `stop` (which must not block: it runs in a
    signal handler) and the work ends in order; a second raises KeyboardInterrupt.
    Yields an Event that is set once Ctrl-C was pressed."""
    pressed = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        print(f"\nrnnlab: stopping {what} (Ctrl-C again to quit at once)", file=sys.stderr)
        stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _split(option: str, text: str) -> list[str]:
    values = [value.strip() for value in text.split(",")]
    if not all(values):
        fail(f"{option} has an empty value in {text!r}")
    return values


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The sweep the options describe: comma lists are its axes; exits 2 if invalid."""
    fixed: dict[str, Any] = {}
    axes: dict[str, list[str]] = {}
    for f in dataclasses.fields(RunConfig):
        value = getattr(args, f.name)
        if f.type == "bool":
            if value:
                fixed[f.name] = True
        elif value is None:
            continue
        elif f.name in SWEEPABLE and "," in value:
            axes[f.name] = _split(_option(f.name), value)
        elif f.name == "seed" and "," in value:
            fail("--seed takes one value; use --seeds 0,1,2 to sweep seeds")
        else:
            fixed[f.name] = value
    seeds: list[str] = []
    if args.seeds is not None:
        if "seed" in fixed:
            fail("give --seed or --seeds, not both")
        seeds = _split("--seeds", args.seeds)
    try:
        base = RunConfig.from_strings({**fixed, **{name: v[0] for name, v in axes.items()}})
        grid = Grid(base, axes, seeds)
        resolve_device(base.device)
        for config in {c.task: c for c in grid.configs()}.values():
            make_task(config)
    except ConfigError as error:
        fail(str(error))
    return grid


def command_sweep(args: argparse.Namespace) -> int:
    grid = grid_from_args(args)
    workers = _whole_number("--workers", args.workers, 1, MAX_WORKERS)
    if args.executor != "ray" and args.ray_address is not None:
        fail("--ray-address goes with --executor ray")
    if args.ray_address is not None and workers is not None:
        fail("--workers sizes the local pool or a local Ray runtime, not a Ray cluster")
    store = _open_store()
    executor, close = _sweep_executor(args.executor, args.ray_address, workers, store)
    bar = _progress_bar(len(grid.configs()), unit="run")

    def on_result(result: RunResult, sweep: SweepResult) -> None:
        if args.json:
            print(json.dumps(sweep.row(result)), flush=True)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(_describe_result(result, sweep), refresh=True)

    stopping = "the sweep: its runs end at their next step, the waiting ones are dropped"
    try:
        with _stopped_by_ctrl_c(executor.cancel, stopping) as pressed:
            sweep = run_sweep(grid, executor=executor, owner="cli", on_result=on_result)
    except KeyboardInterrupt:
        print("rnnlab: sweep interrupted; the runs that finished are kept", file=sys.stderr)
        return INTERRUPTED
    finally:
        close()
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({"summary": sweep.to_dict()}))
    else:
        print(format_sweep(sweep))
    return INTERRUPTED if pressed.is_set() else 0


def command_tune(args: argparse.Namespace) -> int:
    from .tune import StudySettings, parse_space, tune
    from .tune.study import STATES

    base = config_from_args(args)
    trials = _whole_number("--trials", args.trials, 1, MAX_TRIALS)
    workers = _whole_number("--workers", args.workers, 1, MAX_WORKERS)
    parallel = _whole_number("--parallel", args.parallel, 1, MAX_WORKERS * 32)
    if args.executor != "ray" and args.ray_address is not None:
        fail("--ray-address goes with --executor ray")
    try:
        space = parse_space(args.search)
        StudySettings(space, base, args.sampler, args.pruner, args.objective, base.seed)
    except ConfigError as error:
        fail(str(error))
    store = _open_store()
    executor, close = _sweep_executor(args.executor, args.ray_address, workers, store)
    bar = _progress_bar(trials, unit="trial")
    told: set[int] = set()

    def on_change(runner: Any) -> None:
        ended = [
            t
            for t in runner.study.get_trials(deepcopy=False)
            if t.state.is_finished() and t.number not in told
        ]
        for trial in ended:
            told.add(trial.number)
            if args.json:
                row = {
                    "trial": trial.number,
                    "state": STATES.get(trial.state),
                    "value": trial.value,
                    "params": trial.params,
                    **{k: trial.user_attrs.get(k) for k in ("run_id", "steps", "cpu_s")},
                }
                print(json.dumps(row), flush=True)
        if bar is not None and ended:
            bar.update(len(ended))
            bar.set_postfix_str(_describe_study(runner), refresh=True)

    stopping = "the study: its trials end at their next step, no more are asked"
    try:
        with _stopped_by_ctrl_c(lambda: requested.set(), stopping) as requested:
            study = tune(
                space,
                base,
                trials=trials,
                sampler=args.sampler,
                pruner=args.pruner,
                objective=args.objective,
                seed=base.seed,
                study=args.study,
                manager=executor.manager,
                parallel=parallel,
                owner="cli",
                on_change=on_change,
                stop=requested,
            )
    except KeyboardInterrupt:
        print("rnnlab: study interrupted; the trials that finished are kept", file=sys.stderr)
        return INTERRUPTED
    finally:
        close()
        if bar is not None:
            bar.close()
    summary = study.to_dict()
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_study(summary))
    return INTERRUPTED if study.interrupted else 0


def _describe_study(runner: Any) -> str:
    from .tune.study import best_trial

    trials = runner.study.get_trials(deepcopy=False)
    pruned = sum(t.state.name == "PRUNED" for t in trials)
    best = best_trial(trials, runner.settings.direction)
    return f"pruned {pruned}, best {'-' if best is None else f'{best.value:.4g}'}"


def format_study(summary: dict[str, Any]) -> str:
    """A finished study for a terminal: counts, the best trial, what matters."""
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items() if n)
    lines = [
        f"study {summary['study']} ({summary['sampler']}, {summary['pruner']} pruner): "
        f"{counts or 'no trials'} in {summary['wall_s']:.1f} s",
        f"objective: {summary['objective']}",
    ]
    if summary["best_trial"] is None:
        lines.append("no trial completed")
    else:
        settings = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in summary["best_settings"].items()
        )
        lines.append(
            f"best: trial {summary['best_trial']}, {summary['best_value']:.4g} with {settings}"
        )
    importances = summary.get("importances") or {}
    for row in importances.get("importances", []):
        lines.append(
            f"  {row['param']:<12} {row['value']:.2f}  ({row['low']:.2f} to {row['high']:.2f})"
        )
    if importances.get("message"):
        lines.append(importances["message"])
    lines.append(
        f"storage: {summary['storage']} "
        f"(optuna-dashboard {summary['storage']}; rnnlab runs list --study {summary['study']})"
    )
    return "\n".join(lines)


def _sweep_executor(
    kind: str, address: str | None, workers: int | None, store: RunStore
) -> tuple[LocalExecutor | RayExecutor, Callable[[], None]]:
    """The executor a sweep trains on, and what to call when it is done; exits 2 if Ray
    is missing or its cluster cannot be reached."""
    if kind == "ray":
        executor = RayExecutor(address=address, num_cpus=workers, store=store)
        try:
            executor.connect()
        except ClusterError as error:
            fail(str(error))
        return executor, executor.close
    manager = JobManager(
        workers=workers, store=store, max_queued_per_owner=None, orphan_after_s=None
    )
    return LocalExecutor(manager), lambda: manager.shutdown(timeout=30)


def _whole_number(option: str, text: str | None, lo: int, hi: int) -> int | None:
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        fail(f"{option} must be a whole number, got {text!r}")
    if not lo <= number <= hi:
        fail(f"{option}={number} is out of range; allowed {lo} to {hi}")
    return number


def _describe_result(result: RunResult, sweep: SweepResult) -> str:
    point = " ".join(f"{k}={v}" for k, v in sweep.grid.point(result.config).items())
    summary = result.summary or {}
    metric = summary.get("metric")
    shown = "" if metric is None else f" {summary['metric_name']} {metric:.3g}"
    return f"{point}: {result.status}{shown}"


def format_sweep(sweep: SweepResult) -> str:
    table, document = sweep.table(), sweep.to_dict()
    columns = [c for c in table.columns if c not in ("sweep_id", "metric_name", "error")]
    counts = ", ".join(f"{n} {status}" for status, n in document["statuses"].items())
    return "\n".join(
        [
            _text_table(table[columns]) if len(table) else "no run finished",
            "",
            f"per cell, over seeds ({document['metric_name'] or 'metric'} is the mean):",
            _text_table(sweep.summary()),
            "",
            f"sweep {sweep.sweep_id}: {len(sweep.results)} runs ({counts}) in "
            f"{sweep.wall_s:.1f} s; rnnlab runs list --sweep {sweep.sweep_id}",
        ]
    )


def _text_table(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    for column in shown.select_dtypes("Int64").columns:
        shown[column] = ["-" if pd.isna(value) else str(value) for value in shown[column]]
    return shown.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4g}")


def _resolve(store: RunStore, run_id: str) -> str:
    try:
        return store.resolve_id(run_id)
    except StoreError as error:
        fail(str(error))


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _run_line(run: RunRecord) -> dict[str, str]:
    config, summary = run.config, run.summary or {}
    metric = summary.get("metric")
    return {
        "id": run.id,
        "created": _when(run.created_at)[:16],
        "status": run.status,
        "task": str(config.get("task")),
        "cell": str(config.get("cell")),
        "hidden": str(config.get("hidden_size")),
        "seq_len": str(config.get("seq_len")),
        "steps": f"{run.step}/{config.get('steps')}",
        "metric": "-" if metric is None else f"{summary.get('metric_name')} {metric:.4g}",
        "solved": "yes" if summary.get("solved") else "-",
        "pinned": "yes" if run.pinned else "-",
    }


def command_runs_list(args: argparse.Namespace) -> int:
    store = _open_store()
    limit = _whole_number("--limit", args.limit, 1, 10**9)
    config = {name: getattr(args, name) for name in ("task", "cell") if getattr(args, name)}
    runs = store.list_runs(
        status=args.status,
        owner=args.owner,
        sweep_id=args.sweep,
        study=args.study,
        config=config,
        limit=limit,
    )
    if args.json:
        print(json.dumps([run.to_dict() for run in runs]))
        return 0
    if not runs:
        print(f"no runs in {store.path}")
        return 0
    lines = [_run_line(run) for run in runs]
    widths = {key: max(len(key), *(len(line[key]) for line in lines)) for key in lines[0]}
    print("  ".join(key.ljust(width) for key, width in widths.items()).rstrip())
    for line in lines:
        print("  ".join(line[key].ljust(width) for key, width in widths.items()).rstrip())
    return 0


def command_runs_show(args: argparse.Namespace) -> int:
    store = _open_store()
    run = store.get_run(_resolve(store, args.id))
    history, evaluations = store.history(run.id), store.evaluations(run.id)
    snapshot = store.snapshot(run.id)
    if args.json:
        print(
            json.dumps(
                {
                    **run.to_dict(),
                    "steps_recorded": len(history),
                    "evaluations_recorded": len(evaluations),
                    "snapshot_step": None if snapshot is None else snapshot.get("step"),
                },
                default=str,
            )
        )
        return 0
    lines = [
        f"run {run.id}: {run.status}",
        f"owner {run.owner or '-'}, sweep {run.sweep_id or '-'}"
        + (f", study {run.study} trial {run.trial}" if run.study else "")
        + (", pinned" if run.pinned else ""),
        f"created {_when(run.created_at)}, started {_when(run.started_at)}, "
        f"finished {_when(run.finished_at)}",
        "config: " + " ".join(f"{k}={v}" for k, v in run.config.items()),
    ]
    if run.summary:
        lines.append(format_summary(run.summary))
    if run.error:
        lines.append(f"error: {run.error}")
    weights = store.weights_size(run.id)
    lines.append(
        f"history: {len(history)} steps, {len(evaluations)} evaluations, "
        + ("no snapshot" if snapshot is None else f"snapshot at step {snapshot.get('step')}")
        + (", no weights" if weights is None else f", weights {_megabytes(weights)}")
    )
    print("\n".join(lines))
    return 0


def command_runs_export(args: argparse.Namespace) -> int:
    store = _open_store()
    if args.format == "pt":
        return _export_weights(store, _resolve(store, args.id), args.output)
    text = store.export_run(_resolve(store, args.id), args.format)
    if args.output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {args.output}: {error.strerror or error}")
    return 0


def _export_weights(store: RunStore, run_id: str, output: str | None) -> int:
    """Write a run's trained weights as a .pt file (rnnlab.load_model reads it)."""
    if output is None:
        fail("--format pt writes a binary file; give -o FILE")
    try:
        data = weights_file_bytes(store, run_id)
    except WeightsError as error:
        fail(f"run {run_id}'s stored weights cannot be exported: {error}")
    if data is None:
        run = store.get_run(run_id)
        fail(
            f"run {run_id} has no weights ({run.status}): only finished runs keep them, and "
            "older ones lose them to pruning unless pinned (rnnlab runs pin)"
        )
    try:
        Path(output).write_bytes(data)
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}")
    return 0


def command_runs_delete(args: argparse.Namespace) -> int:
    store = _open_store()
    runs = [store.get_run(_resolve(store, run_id)) for run_id in args.ids]
    for run in runs:
        if run.active:
            fail(f"run {run.id} is {run.status}; stop it before deleting it")
    for run in runs:
        try:
            store.delete_run(run.id)
        except StoreError as error:
            fail(str(error))
        print(f"deleted {run.id}")
    return 0


def command_runs_pin(args: argparse.Namespace) -> int:
    store = _open_store()
    run_ids = [_resolve(store, run_id) for run_id in args.ids]
    pinned = args.runs_command == "pin"
    for run_id in run_ids:
        store.pin(run_id, pinned)
        print(f"{args.runs_command}ned {run_id}")
    return 0


# `runs prune` options -> the RetentionPolicy fields they set.
PRUNE_OPTIONS = {
    "--budget-mb": "disk_budget_mb",
    "--keep-weights": "weights_per_owner",
    "--keep-history": "history_per_owner",
    "--history-points": "history_points",
    "--owner-share": "owner_share",
}


def policy_from_args(args: argparse.Namespace) -> RetentionPolicy:
    """The retention policy: the environment's, with the options given; exits 2 if invalid."""
    overrides: dict[str, float] = {}
    for option, name in PRUNE_OPTIONS.items():
        text = getattr(args, name)
        if text is None:
            continue
        try:
            overrides[name] = float(text)
        except ValueError:
            fail(f"{option} must be a number, got {text!r}")
    try:
        return RetentionPolicy.from_environment(**overrides)
    except ValueError as error:
        message = str(error)
        for option, name in PRUNE_OPTIONS.items():
            if message.startswith(f"{name} ") and name in overrides:
                message = option + message[len(name) :]
        fail(message)


def command_runs_prune(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    store = _open_store()
    try:
        report = store.prune(policy)
    except StoreError as error:
        fail(str(error))
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_prune(report))
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def format_prune(report: PruneReport) -> str:
    """What a prune dropped, and the store's size before and after."""
    lines = []
    for ids, what in (
        (report.weights_dropped, "dropped the weights of"),
        (report.histories_thinned, "thinned the history of"),
        (report.snapshots_dropped, "dropped the snapshot of"),
    ):
        if ids:
            runs = "run" if len(ids) == 1 else "runs"
            lines.append(f"{what} {len(ids)} {runs}: {' '.join(ids)}")
    if not lines:
        lines.append("nothing to drop")
    before, after = report.before, report.after
    lines.append(
        f"store: {_megabytes(before.total_bytes)} before, {_megabytes(after.total_bytes)} "
        f"after (write-ahead log {_megabytes(after.wal_bytes)}); "
        f"budget {_megabytes(report.budget_bytes)}"
    )
    if report.converted:
        lines.append("the file was rewritten once to give freed space back from now on")
    if report.over_budget:
        lines.append("still over the budget: pinned runs and run records are kept")
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    def number(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    solved = (
        f"solved at step {summary['solved_at_step']}"
        if summary["solved_at_step"] is not None
        else "not solved"
    )
    return "\n".join(
        [
            f"{summary['status']} after {summary['steps']} steps in {summary['wall_s']:.1f} s "
            f"({number(summary['steps_per_s'])} steps/s)",
            f"held-out loss {number(summary['final_loss'])} (best "
            f"{number(summary['best_loss'])}, baseline {number(summary['baseline'])})",
            f"{summary['metric_name']} {number(summary['metric'])}; {solved}",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlab", description="Train recurrent networks and look inside.", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train_parser = commands.add_parser(
        "train", help="train one model and report the result", allow_abbrev=False
    )
    add_config_options(train_parser)
    train_parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON line"
    )
    train_parser.set_defaults(handler=command_train)

    sweep_parser = commands.add_parser(
        "sweep",
        help="train a grid of runs: comma lists in one or two options, times seeds",
        allow_abbrev=False,
    )
    add_config_options(sweep_parser)
    sweep_parser.add_argument(
        "--seeds", metavar="LIST", help="seeds to repeat every grid point with, e.g. 0,1,2"
    )
    add_pool_options(sweep_parser)
    sweep_parser.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per finished run, then {"summary": ...}',
    )
    sweep_parser.set_defaults(handler=command_sweep)

    tune_parser = commands.add_parser(
        "tune",
        help="search several settings at once: an Optuna study whose trials are runs",
        allow_abbrev=False,
    )
    add_config_options(tune_parser)
    tune_parser.add_argument(
        "--search",
        metavar="SPACE",
        required=True,
        help="the settings to search, comma-separated: a bare name (its default range or "
        "every choice), NAME=LO:HI[:log|:linear] or NAME=A|B|C; e.g. "
        "cell,hidden_size,lr=1e-4:1e-1:log. The other options fix the rest; --steps is "
        "each trial's budget",
    )
    tune_parser.add_argument("--trials", metavar="N", default="20", help="trials (default 20)")
    tune_parser.add_argument(
        "--sampler", choices=("tpe", "random", "grid", "nsga2"), default="tpe", help="default tpe"
    )
    tune_parser.add_argument(
        "--pruner",
        choices=("halving", "median", "none"),
        default="halving",
        help="stop poor trials early (default: successive halving)",
    )
    tune_parser.add_argument(
        "--objective",
        choices=("loss", "metric", "steps_to_solve"),
        default="loss",
        help="final held-out loss (default), the task's metric, or steps to solve "
        "(an unsolved trial counts twice its steps)",
    )
    tune_parser.add_argument(
        "--study",
        metavar="NAME",
        help="the study's name; an existing study of that name is resumed with its settings",
    )
    tune_parser.add_argument(
        "--parallel", metavar="N", help="trials training at once (default: as the pool allows)"
    )
    add_pool_options(tune_parser)
    tune_parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON line per finished trial, then one object: the study",
    )
    tune_parser.set_defaults(handler=command_tune)

    runs_parser = commands.add_parser(
        "runs",
        help="list, show, export, delete, pin or prune recorded runs",
        allow_abbrev=False,
    )
    runs_commands = runs_parser.add_subparsers(
        dest="runs_command",
        metavar="list|show|export|delete|pin|unpin|prune",
        required=True,
        parser_class=_Parser,
    )
    list_parser = runs_commands.add_parser(
        "list", help="recorded runs, newest first", allow_abbrev=False
    )
    list_parser.add_argument("--json", action="store_true", help="print one JSON array")
    list_parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    list_parser.add_argument("--owner", help="only runs of this owner")
    list_parser.add_argument("--sweep", metavar="ID", help="only the runs of this sweep")
    list_parser.add_argument("--study", metavar="NAME", help="only the trials of this study")
    list_parser.add_argument("--task", help="only runs of this task")
    list_parser.add_argument("--cell", help="only runs of this cell type")
    list_parser.add_argument("--limit", metavar="N", help="at most N runs")
    list_parser.set_defaults(handler=command_runs_list)
    show_parser = runs_commands.add_parser(
        "show", help="one run: config, summary, history", allow_abbrev=False
    )
    show_parser.add_argument("id", help="run id (a unique prefix will do)")
    show_parser.add_argument("--json", action="store_true", help="print one JSON object")
    show_parser.set_defaults(handler=command_runs_show)
    export_parser = runs_commands.add_parser(
        "export",
        help="a run's history as CSV, everything but its weights as JSON, or its trained "
        "weights as a PyTorch .pt file (rnnlab.load_model reads it)",
        allow_abbrev=False,
    )
    export_parser.add_argument("id", help="run id (a unique prefix will do)")
    export_parser.add_argument("--format", choices=(*EXPORT_FORMATS, "pt"), default="json")
    export_parser.add_argument("--output", "-o", metavar="FILE", help="write here, not stdout")
    export_parser.set_defaults(handler=command_runs_export)
    delete_parser = runs_commands.add_parser(
        "delete", help="delete finished runs and their history", allow_abbrev=False
    )
    delete_parser.add_argument("ids", nargs="+", metavar="ID", help="run ids")
    delete_parser.set_defaults(handler=command_runs_delete)
    for command, help_text in (
        ("pin", "keep runs' weights and whole history when the store is pruned"),
        ("unpin", "let pruning treat runs like any other again"),
    ):
        pin_parser = runs_commands.add_parser(command, help=help_text, allow_abbrev=False)
        pin_parser.add_argument("ids", nargs="+", metavar="ID", help="run ids")
        pin_parser.set_defaults(handler=command_runs_pin)
    prune_parser = runs_commands.add_parser(
        "prune",
        help="drop old runs' weights and thin their history to keep the store within its "
        "disk budget (queued, running and pinned runs are kept)",
        allow_abbrev=False,
    )
    settings = {f.name: f for f in dataclasses.fields(RetentionPolicy)}
    for option, name in PRUNE_OPTIONS.items():
        spec, default = settings[name].metadata, settings[name].default
        prune_parser.add_argument(
            option,
            dest=name,
            metavar="N",
            help=f"{spec['help']} (default ${spec['env']}, else {default:g})",
        )
    prune_parser.add_argument("--json", action="store_true", help="print one JSON object")
    prune_parser.set_defaults(handler=command_runs_prune)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # no command: say what there is
        return 2
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
