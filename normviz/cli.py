"""The headless CLI: `python -m normviz <view> [--setting value ...] [--json PATH]`.

One command per view of normviz/views.py, by the view's name. Its flags are generated from the view's Spec
fields, so the CLI, the URL and the pages accept the same settings with the same validation. A bad flag
exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from tqdm import tqdm

from normviz import views
from normviz.config import SpecError, ViewsSpec
from normviz.data import DataError

REPORT = "report"  # the subcommands that are not views: normviz/report.py, normviz/warm.py
WARM = "warm"
ALIASES = {"data": "dataset"}  # extra flag -> setting (--data alone would abbreviate --dataset and --data-file)
# the commands of earlier versions, one per experiment, and where each went
RENAMED = {
    "init-sweep": "init_sweep",
    "momentum": "running_stats",
    "by-hand": "by_hand",
    "inference": "train_vs_inference --part inference",
    "batch-size": "train_vs_inference --part batch_size",
    "norm-axes": "alternatives --view axes",
    "norm-zoo": "alternatives --view every-norm",
    "norm-cost": "alternatives --view cost",
    "sync-bn": "alternatives --view sync-bn",
    "rnn-norms": "alternatives --view rnn",
    "why-lr-range": "why_bn --view lr-range",
    "why-landscape": "why_bn --view landscape",
    "why-noisy-bn": "why_bn --view noisy",
    "why-scale": "why_bn --view scale",
    "why-adabn": "why_bn --view adabn",
}


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m normviz", description="Run normviz's views headless; JSON out.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for view in views.VIEWS:
        p = sub.add_parser(view.name, help=view.summary, description=view.summary)
        for name, info in view.spec_cls.field_info().items():
            if info["scope"] == "session":  # set by a page from its session (an upload), not by a flag
                continue
            flags = [_flag(name)] + [_flag(a) for a, target in ALIASES.items() if target == name]
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
        if len(view.runs) > 1:
            names = [part.experiment for part in view.parts(view.spec_cls())]
            p.add_argument("--part", choices=names, help="run only this part (default: all, JSON keyed by part)")
        p.add_argument("--json", dest="json_path", metavar="PATH", help="write the result here (default: stdout)")
    from normviz import report  # not a view: the lessons' figures as one offline HTML file

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


def _renamed(argv: list[str]) -> None:
    """A command of an earlier version gets the one that replaced it."""
    command = next((word for word in argv if not word.startswith("-")), None)
    if command in RENAMED:
        raise UsageError(f"python -m normviz: the command {command!r} is now `{RENAMED[command]}`")


def main(argv: list[str] | None = None) -> int:
    from normviz.runtime import configure_torch

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _renamed(argv)
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
        view = views.view(args.command)
        given = {k: v for k, v in vars(args).items() if k not in ("command", "json_path", "part") and v is not None}
        values = {k: (v if isinstance(v, bool) else view.spec_cls.parse_field(k, v)) for k, v in given.items()}
        spec = view.spec_cls(**values)
        if isinstance(spec, ViewsSpec) and (unused := sorted(set(given) - set(spec.sub().field_info()) - {"view"})):
            print(f"note: --view {spec.view} does not read {', '.join(map(_flag, unused))}", file=sys.stderr)
        parts = view.parts(spec)
        parts = [p for p in parts if getattr(args, "part", None) in (None, p.experiment)]
        configure_torch()
        with tqdm(total=100, desc=view.name, disable=not sys.stderr.isatty(), unit="%") as bar:
            results = views.train(parts, lambda done: bar.update(round(100 * done) - bar.n))
        summaries = {part.experiment: result.summary() for part, result in zip(parts, results)}
        summary = summaries if len(summaries) > 1 else next(iter(summaries.values()))
        out = json.dumps(_finite(summary), indent=1)
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
