"""Specs validate on construction and round-trip through dict, JSON and URL query params."""

import math
from dataclasses import dataclass

import pytest

from normviz.config import DataSpec, Spec, SpecError, param
from normviz.experiments.activations import ActivationsSpec
from normviz.experiments.init_sweep import InitSweepSpec


def test_defaults_round_trip_through_dict_json_and_query():
    spec = ActivationsSpec(depth=3, activation="tanh", init_std=0.5, seed=7)
    assert ActivationsSpec.from_dict(spec.to_dict()) == spec
    assert ActivationsSpec.from_json(spec.to_json()) == spec
    parsed, warnings = ActivationsSpec.from_query(spec.to_query())
    assert parsed == spec and warnings == []


def test_specs_are_hashable_and_keys_differ_by_setting():
    a, b = ActivationsSpec(), ActivationsSpec(seed=1)
    assert hash(a) == hash(ActivationsSpec()) and a.key() != b.key()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"depth": 0}, "depth"),
        ({"depth": 11}, "depth"),
        ({"width": 2.5}, "width"),
        ({"activation": "swish"}, "activation"),
        ({"lr": math.nan}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"batch_size": True}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"init_std": "big"}, "init_std"),
    ],
)
def test_invalid_values_raise_naming_the_field(changes, field):
    with pytest.raises(SpecError, match=field):
        ActivationsSpec(**changes)


def test_cross_field_checks():
    with pytest.raises(SpecError, match="data_file"):
        DataSpec(dataset="mnist-file")
    with pytest.raises(SpecError, match="scale_min"):
        InitSweepSpec(scale_min=1.0, scale_max=0.1)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(SpecError, match="unknown"):
        ActivationsSpec.from_dict({"depthh": 3})


@pytest.mark.parametrize(
    "params, key",
    [
        ({"depth": "abc"}, "depth"),
        ({"depth": "99"}, "depth"),
        ({"lr": "nan"}, "lr"),
        ({"lr": "-inf"}, "lr"),
        ({"activation": "3"}, "activation"),
        ({"depth": ["2", "3"]}, "depth"),
        ({"depth": ""}, "depth"),
        ({"seed": "1" * 500}, "seed"),
        ({"wat": "1"}, "wat"),
        ({"depth": "2.5"}, "depth"),
    ],
)
def test_from_query_falls_back_with_a_warning_naming_the_key(params, key):
    spec, warnings = ActivationsSpec.from_query(params)
    assert len(warnings) == 1 and key in warnings[0]
    good = {k: v for k, v in spec.to_dict().items() if k != key}
    assert good == {k: v for k, v in ActivationsSpec().to_dict().items() if k != key}


def test_from_query_keeps_the_good_values_next_to_bad_ones():
    spec, warnings = ActivationsSpec.from_query({"depth": "3", "width": "-5", "activation": "tanh"})
    assert (spec.depth, spec.width, spec.activation) == (3, ActivationsSpec().width, "tanh")
    assert len(warnings) == 1 and "width" in warnings[0]


def test_parse_field_types():
    assert ActivationsSpec.parse_field("depth", "4") == 4
    assert ActivationsSpec.parse_field("depth", "4.0") == 4
    assert ActivationsSpec.parse_field("lr", "1e-3") == 1e-3
    assert InitSweepSpec.parse_field("scaling", "unit") == "unit"
    with pytest.raises(SpecError, match="one of"):
        ActivationsSpec.parse_field("scaling", "x")


@dataclass(frozen=True)
class ListSpec(Spec):
    flag: bool = param(False, "a switch")
    values: tuple[float, ...] = param((0.1, 0.5), "some numbers", lo=0.0, hi=1.0)


def test_bool_and_list_fields():
    assert ListSpec.parse_field("flag", "true") is True and ListSpec.parse_field("flag", "0") is False
    assert ListSpec.parse_field("values", "0.01, 0.2") == (0.01, 0.2)
    spec, warnings = ListSpec.from_query({"flag": "maybe", "values": "0.1,2"})
    assert spec == ListSpec() and len(warnings) == 2
    assert "flag" in warnings[0] and "values" in warnings[1]
    with pytest.raises(SpecError, match="repeated"):
        ListSpec(values=(0.1, 0.1))
    with pytest.raises(SpecError, match="at least one"):
        ListSpec(values=())
    assert ListSpec.from_query(ListSpec(flag=True, values=(0.3,)).to_query())[0] == ListSpec(flag=True, values=(0.3,))
