"""The CLI is derived from the view registry: one command per view, by the view's name."""

import json

from normviz import cli, views


def _commands() -> set[str]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return set(sub.choices)


def test_one_command_per_view_by_its_name():
    assert _commands() == {v.name for v in views.VIEWS} | {cli.REPORT, cli.WARM}


def test_every_flag_is_a_setting_of_the_views_spec():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    for view in views.VIEWS:
        dests = {a.dest for a in sub.choices[view.name]._actions} - {"help", "json_path", "part"}
        fields = {n for n, info in view.spec_cls.field_info().items() if info["scope"] != "session"}
        assert dests == fields, view.name


def test_a_command_of_an_earlier_version_names_its_replacement(capsys):
    for old, new in cli.RENAMED.items():
        assert cli.main([old, "--steps", "3"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: python -m normviz: the command {old!r} is now `{new}`"]
        words = new.split()
        assert words[0] in _commands()  # the replacement exists


def test_a_setting_the_chosen_experiment_does_not_read_gets_a_note(capsys):
    assert cli.main(["alternatives", "--view", "axes", "--groups", "2", "--steps", "20"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == "note: --view axes does not read --steps"
    assert json.loads(out)["spec"]["groups"] == 2


def test_a_view_of_several_runs_runs_one_part_when_asked(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    argv = ["train_vs_inference", "--part", "batch_size", "--sizes", "2", "--norms", "batch", "--stream-steps", "10"]
    assert cli.main([*argv, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["sizes"] == [2] and list(data["test_acc"]) == ["batch"]  # one part: its summary, not keyed
