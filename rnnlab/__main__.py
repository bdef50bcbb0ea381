"""Command line: `python -m rnnlab train ...` (also installed as `rnnlab`).

Every RunConfig field is an option (hidden_size -> --hidden-size). Invalid options or
values exit with status 2 and one line on stderr; a run that ends in any status exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from typing import Any

from .config import ConfigError, RunConfig
from .tasks import make_task
from .train import Evaluation, Finished, Step, resolve_device, train


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


def _progress_bar(total: int):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)


def command_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        resolve_device(config.device)
        task = make_task(config)
    except ConfigError as error:
        fail(str(error))
    cancel = threading.Event()
    bar = _progress_bar(config.steps)
    summary: dict[str, Any] = {}
    events = train(config, cancel=cancel, task=task)
    while True:
        try:
            event = next(events)
        except StopIteration:
            break
        except KeyboardInterrupt:
            cancel.set()
            continue
        if bar is not None and isinstance(event, Step):
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
        elif bar is not None and isinstance(event, Evaluation):
            bar.set_postfix(loss=f"{event.loss:.4f}", held_out=f"{event.metric:.4f}")
        elif isinstance(event, Finished):
            summary = event.summary
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
