"""A CLI command as an experiment declares it: the experiment names its Spec, run and JSON summary here,
and normviz.cli turns it into a subcommand (so experiments never import the CLI)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    spec_cls: type
    run: Callable[..., Iterator]
    summarize: Callable[[object], dict]
    aliases: dict = field(default_factory=dict)  # extra flag name -> spec field
