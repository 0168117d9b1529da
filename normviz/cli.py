"""The headless CLI: `python -m normviz <command> [--spec-field value ...] [--json PATH]`.

Each command's flags are generated from its Spec's fields, so the CLI, the URL and the pages
accept the same settings with the same validation. A bad flag exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from normviz.config import SpecError
from normviz.data import DataError

# experiment modules that define COMMAND (a Command); each becomes a subcommand
MODULES = (
    "activations",
    "init_sweep",
    "running_stats",
    "by_hand",
    "inference",
    "batch_size",
    "alternatives",
    "norm_zoo",
    "norm_cost",
    "sync_bn",
    "rnn_norms",
)
REPORT = "report"  # the one subcommand that is not an experiment (normviz/report.py)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    spec_cls: type
    run: Callable[..., Iterator]
    summarize: Callable[[object], dict]
    aliases: dict = field(default_factory=dict)  # extra flag name -> spec field


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


def commands() -> dict[str, Command]:
    found = [importlib.import_module(f"normviz.experiments.{m}").COMMAND for m in MODULES]
    return {c.name: c for c in found}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(cmds: dict[str, Command]) -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m normviz", description="Run normviz experiments headless; JSON out.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in cmds.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for name, info in cmd.spec_cls.field_info().items():
            flags = [_flag(name)] + [_flag(a) for a, target in cmd.aliases.items() if target == name]
            desc = info["help"] + (f" (one of: {', '.join(info['choices'])})" if info.get("choices") else "")
            if info["kind"] is bool:
                p.add_argument(
                    *flags,
                    dest=name,
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=f"{desc} (default: {info['default']})",
                )
            else:
                p.add_argument(
                    *flags, dest=name, default=None, metavar=name.upper(), help=f"{desc} (default: {info['default']})"
                )
        p.add_argument("--json", dest="json_path", metavar="PATH", help="write the result here (default: stdout)")
    from normviz import report  # not an experiment: the lessons' figures as one offline HTML file

    report.add_arguments(sub.add_parser(REPORT, help="render the lessons (presets) into one offline HTML file"))
    return parser


def _finite(obj):
    """NaN/inf are not JSON; a diverged model's numbers become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    from normviz.runtime import configure_torch

    cmds = commands()
    parser = build_parser(cmds)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == REPORT:
            from normviz import report

            return report.main(args)
        cmd = cmds[args.command]
        given = {k: v for k, v in vars(args).items() if k not in ("command", "json_path") and v is not None}
        values = {k: (v if isinstance(v, bool) else cmd.spec_cls.parse_field(k, v)) for k, v in given.items()}
        spec = cmd.spec_cls(**values)
        configure_torch()
        with tqdm(total=100, desc=cmd.name, disable=not sys.stderr.isatty(), unit="%") as bar:
            result = None
            for result in cmd.run(spec):
                bar.update(round(100 * result.progress) - bar.n)
        out = json.dumps(_finite(cmd.summarize(result)), indent=1)
        if args.json_path:
            with open(args.json_path, "w") as f:
                f.write(out)
        else:
            print(out)
    except (UsageError, SpecError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the result: {exc}", file=sys.stderr)
        return 2
    return 0
