"""One module per question the app answers, each with its Spec, Result and run(spec); MODULES lists them."""

import importlib

from normviz.commands import Command

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
    "why_lr_range",
    "why_landscape",
    "why_noisy",
    "why_scale",
    "why_adabn",
)


def commands() -> dict[str, Command]:
    """Each experiment's CLI command by name (imports the modules)."""
    found = [importlib.import_module(f"normviz.experiments.{m}").COMMAND for m in MODULES]
    return {c.name: c for c in found}
