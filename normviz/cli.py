"""The headless CLI: `python -m normviz <command> [--spec-field value ...] [--json PATH]`.

Each command's flags are generated from its Spec's fields, so the CLI, the URL and the pages
accept the same settings with the same validation. A bad flag exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from tqdm import tqdm

from normviz.commands import Command
from normviz.config import SpecError
from normviz.data import DataError
from normviz.experiments import commands

REPORT = "report"  # the subcommands that are not experiments: normviz/report.py, normviz/warm.py
WARM = "warm"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(
            self._attach_dash_values(sys.argv[1:] if args is None else list(args)), namespace
        )

    def _attach_dash_values(self, args: list[str]) -> list[str]:
        """`--gamma -0.5,1` -> `--gamma=-0.5,1`: argparse takes a value that starts with '-' for a flag.

        Only after a flag that takes a value, and only when the next word is not one of this parser's flags.
        """
        flags = {opt: action for action in self._actions for opt in action.option_strings}
        out, i = [], 0
        while i < len(args):
            word = args[i]
            action = flags.get(word) or self._unique_prefix(word, flags)
            nxt = args[i + 1] if i + 1 < len(args) else None
            takes_value = action is not None and action.nargs is None and word.startswith("--") and "=" not in word
            if takes_value and nxt and nxt.startswith("-") and not nxt.startswith("--") and nxt not in flags:
                out.append(f"{word}={nxt}")
                i += 2
                continue
            out.append(word)
            if word == "--":  # everything after it is positional
                return out + args[i + 1 :]
            i += 1
        return out

    def _unique_prefix(self, word: str, flags: dict):
        """The action of the one flag `word` abbreviates (argparse accepts unique prefixes), else None."""
        if not self.allow_abbrev or not word.startswith("--"):
            return None
        found = {flags[f] for f in flags if f.startswith(word)}
        return found.pop() if len(found) == 1 else None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(cmds: dict[str, Command]) -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m normviz", description="Run normviz experiments headless; JSON out.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in cmds.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for name, info in cmd.spec_cls.field_info().items():
            if info["scope"] == "session":  # set by a page from its session (an upload), not by a flag
                continue
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
    sub.add_parser(WARM, help="train every default and tour preset into the disk cache (before class)")
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
        if args.command == WARM:
            from normviz import warm

            return warm.main()
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
            try:
                with open(args.json_path, "w") as f:
                    f.write(out)
            except OSError as exc:
                raise UsageError(f"cannot write the result to {args.json_path}: {exc.strerror or exc}") from None
        else:
            print(out)
    except (UsageError, SpecError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # not the result file (that is a UsageError above): say what the system said
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
