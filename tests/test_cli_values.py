"""CLI values that start with a minus sign, written the natural way (`--gamma -0.5,1`), for every command."""

import json

import pytest

from normviz import cli, views

COMMANDS = {v.name: v.spec_cls for v in views.VIEWS}
PARSER = cli.build_parser()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dash_values() -> list[tuple[str, str, str]]:
    """(command, field, a text value starting with '-') for every field that takes a value, of every command."""
    out = []
    for name, spec_cls in sorted(COMMANDS.items()):
        for field, info in spec_cls.field_info().items():
            if info.get("scope") == "session":  # set by a page (an upload), never a flag
                continue
            if info["kind"] is tuple:
                out.append((name, field, {float: "-0.5,1.5", int: "-2,3", str: "-a,b"}[info["item_kind"]]))
            elif info["kind"] in (int, float):
                out.append((name, field, "-3"))
            elif info["kind"] is str:  # by-hand's x, gamma and beta are lists written as text
                out.append((name, field, "-0.5,1"))
    return out


DASH_VALUES = _dash_values()


def test_the_list_valued_flags_of_every_command_are_covered():
    fields = {(c, f) for c, f, _ in DASH_VALUES}
    assert {("by_hand", "gamma"), ("by_hand", "x"), ("running_stats", "momenta")} <= fields
    assert {
        ("train_vs_inference", "sizes"),
        ("alternatives", "cost_batch_sizes"),
        ("alternatives", "sub_batches"),
    } <= fields
    assert {c for c, _, _ in DASH_VALUES} == set(COMMANDS)


@pytest.mark.parametrize(("command", "field", "text"), DASH_VALUES)
def test_a_value_may_start_with_a_minus_sign(command, field, text):
    flag = _flag(field)
    cases = [[flag, text], [f"{flag}={text}"]]
    if sum(f.startswith(flag[:-1]) for f in _all_flags(command)) == 1:
        cases.append([flag[:-1], text])  # argparse's unique abbreviation
    for args in cases:
        assert getattr(PARSER.parse_args([command, *args]), field) == text, args


def _all_flags(command: str) -> list[str]:
    return [_flag(f) for f in COMMANDS[command].field_info()] + ["--json"]


def test_a_missing_value_is_still_an_error(capsys):
    assert cli.main(["by_hand", "--gamma", "--beta", "1"]) == 2
    assert "--gamma: expected one argument" in capsys.readouterr().err


def test_by_hand_with_a_negative_gamma_runs_as_with_the_equals_sign(capsys):
    x = "[[1,2],[3,5]]"
    assert cli.main(["by_hand", "--x", x, "--gamma", "-0.5,1"]) == 0
    spaced = json.loads(capsys.readouterr().out)
    assert cli.main(["by_hand", "--x", x, "--gamma=-0.5,1"]) == 0
    assert json.loads(capsys.readouterr().out) == spaced
    assert cli.main(["by_hand", "--x", x, "--gamma", "0.5,1"]) == 0
    assert json.loads(capsys.readouterr().out) != spaced  # the sign was not lost


def test_an_out_of_range_negative_value_is_a_one_line_spec_error(capsys):
    assert cli.main(["alternatives", "--view", "sync-bn", "--sub-batches", "-2,4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sub_batches: must be between 1 and 128" in err[0]
