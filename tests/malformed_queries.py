"""Malformed URL query strings for a page, generated from its spec's field names and default values.

Shared by the unit robustness tests (`Spec.from_query` on every spec class) and the browser fuzz test
(every page opened with each query). Only the names and the default values as the URL writes them are
needed, so the browser test can build the cases from the URL a page writes after a default load.

Each case is a raw query string (already percent-encoded as it appears in the address bar) and the
parameter that the fallback warning must name, or None for values that are odd but valid (negative
zero, digits with an underscore): those must not raise and need not warn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import cycle
from urllib.parse import quote

HUGE = 10_000  # characters in the "huge string" cases
RLO = "\u202e"  # right-to-left override: shown raw, it makes a message read backwards
MARKUP = (  # Markdown that Streamlit would render: an image fetch, a link, emphasis, a colour, an icon
    "![x](http://127.0.0.1:9/fuzz.png)",
    "[a](javascript:alert(1))",
    "**bold**",
    ":red[x]",
    ":material/home:",
)


@dataclass(frozen=True)
class Case:
    label: str  # what kind of garbage, for the failure message
    query: str  # raw query string without the leading "?"
    expect: str | None  # the parameter the warning must name; None: must not raise, warning optional


def names_key(messages: list[str], key: str) -> bool:
    """A warning names the parameter: quoted as code (maybe clipped), or as the field of a spec error."""
    return any(f"`{key}`" in m or f"`{key}…`" in m or f"`'{key}'`" in m or f"({key}:" in m for m in messages)


def field_kind(default: str) -> str:
    """The field's type as far as the URL tells: bool, int, float, tuple, select or text."""
    if default in ("true", "false"):
        return "bool"
    if "," in default:
        return "tuple"
    try:
        float(default)
    except ValueError:
        return "select" if re.fullmatch(r"[a-z][a-z0-9_-]*", default) else "text"
    return "int" if re.fullmatch(r"-?\d+", default) else "float"


def spec_classes() -> list[type]:
    """Every Spec class the commands and experiment modules define (pages build theirs from these)."""
    import importlib
    import pkgutil

    import normviz.experiments
    from normviz.config import Spec

    found = {}
    for info in pkgutil.iter_modules(normviz.experiments.__path__):
        module = importlib.import_module(f"normviz.experiments.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Spec) and obj.__module__ == module.__name__:
                found[obj.__name__] = obj
    return list(found.values())


def spec_kinds(defaults: dict[str, str]) -> dict[str, str] | None:
    """Field kinds of the Spec class whose fields are exactly these URL keys, less the main-area controls'
    (views' `shown`: a list if its default is, else a select); None if no class matches. The URL cannot
    tell a free-text field with a number in it ("1") from a number."""
    from normviz import views

    shown = {n for view in views.VIEWS for n in view.shown} & set(defaults)
    for cls in spec_classes():
        info = cls.field_info()
        if set(info) == set(defaults) - shown:
            return {n: "tuple" if "," in defaults[n] else "select" for n in shown} | {
                n: (
                    "select"
                    if i["choices"] and i["kind"] is str
                    else "text"
                    if i["kind"] is str
                    else {bool: "bool", int: "int", float: "float"}.get(i["kind"], "tuple")
                )
                for n, i in info.items()
            }
    return None


def _q(key: str, value: str) -> str:
    return f"{quote(key, safe='')}={quote(value, safe='')}"


def malformed_queries(defaults: dict[str, str], kinds: dict[str, str] | None = None) -> list[Case]:
    """At least 30 malformed query strings for a spec with these fields (name -> default as in the URL),
    the most varied first (a caller short of time may take a prefix), the odd-but-valid ones last.

    `kinds` may override `field_kind` (the unit tests know which text fields are selects)."""
    kinds = {name: (kinds or {}).get(name) or field_kind(v) for name, v in defaults.items()}
    of = {k: [n for n in defaults if kinds[n] == k] for k in ("bool", "int", "float", "tuple", "select", "text")}
    numeric = of["int"] + of["float"]
    anyfield = cycle(list(defaults))
    num = cycle(numeric or list(defaults))
    cases = [
        Case("unknown key", "zz_unknown_key=1", "zz_unknown_key"),
        Case("unknown key (unicode)", _q("schlüssel_ü", "1"), "schlüssel_ü"),
        Case("unknown key (huge)", "k" * HUGE + "=1", "k" * 40),
        Case("empty key", "=1", ""),
        Case("unknown preset", "preset=no-such-preset", "preset"),
        Case("empty preset", "preset=", "preset"),
    ]
    for label, value in [
        ("non-number", "abc"),
        ("empty string", ""),
        ("NaN", "nan"),
        ("NaN (capital)", "NaN"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("Infinity", "Infinity"),
        ("1e309", "1e309"),
        ("-1e309", "-1e309"),
        ("huge number string", "9" * HUGE),
        ("out of range high", "1e12"),
        ("out of range low", "-1e12"),
        ("emoji", "🙂"),
        ("vulgar fraction", "½"),
        ("hex", "0x10"),
        ("list for a scalar", "1,2"),
        ("brackets", "[1]"),
        ("bool for a number", "true"),
        ("injection", "1;DROP TABLE x"),
        ("newline", "1\n2"),
        ("only spaces", "   "),
        ("NUL byte", "\x00"),
    ]:
        name = next(num)
        cases.append(Case(f"{label} for {name}", _q(name, value), name))
    for name in of["int"][:3]:
        cases.append(Case(f"fraction for int {name}", _q(name, "2.5"), name))
    name = next(num)
    cases.append(Case(f"percent-encoded garbage for {name}", f"{quote(name)}=%ZZ%00%ff%E2%82", name))
    name = next(anyfield)
    cases.append(Case(f"repeated key {name}", f"{_q(name, defaults[name])}&{_q(name, defaults[name])}", name))
    name = next(anyfield)
    cases.append(Case(f"huge string for {name}", _q(name, "x" * HUGE), name))
    for name in of["bool"]:
        cases += [
            Case(f"not a bool for {name}", _q(name, "maybe"), name),
            Case(f"2 for bool {name}", _q(name, "2"), name),
        ]
    for name in of["select"]:
        cases += [
            Case(f"number for select {name}", _q(name, "42"), name),
            Case(f"upper case for select {name}", _q(name, defaults[name].upper() + "!"), name),
        ]
    for name in of["select"][:2]:
        cases += [
            Case(f"markup for select {name}", _q(name, "<script>alert(1)</script>"), name),
            Case(f"emoji for select {name}", _q(name, "🙂"), name),
        ]
    for name in of["tuple"]:
        cases += [
            Case(f"empty list {name}", _q(name, ","), name),
            Case(f"garbage item in {name}", _q(name, defaults[name].split(",")[0] + ",,zz"), name),
            Case(f"repeated item in {name}", _q(name, ",".join([defaults[name].split(",")[0]] * 2)), name),
            Case(f"NaN item in {name}", _q(name, defaults[name].split(",")[0] + ",nan"), name),
        ]
    for name in numeric:  # every numeric field gets a non-number once
        cases.append(Case(f"non-number for {name}", _q(name, "x1"), name))
    # odd but valid: must not raise, may or may not warn
    for name in numeric[:2]:
        cases += [
            Case(f"negative zero for {name}", _q(name, "-0"), None),
            Case(f"underscore digits for {name}", _q(name, "1_0"), None),
        ]
    return cases


def markup_queries(defaults: dict[str, str], kinds: dict[str, str] | None = None) -> list[Case]:
    """User text that must reach a message as plain text: Markdown and an RTL override in keys and values,
    huge numbers, unicode. Each case's warning must name its parameter (written as inline code)."""
    kinds = {name: (kinds or {}).get(name) or field_kind(v) for name, v in defaults.items()}
    numeric = [n for n in defaults if kinds[n] in ("int", "float")] or list(defaults)
    texts = [n for n in defaults if kinds[n] in ("tuple", "select")] or list(defaults)  # free text may be valid
    num, text = cycle(numeric), cycle(texts)
    cases = [Case(f"markup key {m}", _q(m, "1"), m) for m in MARKUP]
    cases.append(Case("RTL override in a key", _q(f"k{RLO}ey", "1"), "k\\u202eey"))
    for label, value, name in [
        ("image markup value", MARKUP[0], next(num)),
        ("link markup value", MARKUP[1], next(text)),
        ("bold and colour value", f"{MARKUP[2]} {MARKUP[3]}", next(text)),
        ("1e400", "1e400", next(num)),
        ("-1e400", "-1e400", next(num)),
        ("9 x 500", "9" * 500, next(num)),
        ("9 x 150", "9" * 150, next(num)),
        ("unicode", "ünï∞ 🙂", next(num)),
        ("RTL override in a value", f"1{RLO}2", next(num)),
        ("backticks and markup", "`x`![x](http://127.0.0.1:9/tick.png)", next(text)),
    ]:
        cases.append(Case(f"{label} for {name}", _q(name, value), name))
    return cases
