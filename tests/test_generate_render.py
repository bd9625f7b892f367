"""The YAML emitter: whatever it writes, yaml.safe_load reads back unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.generate.alertmanager import alertmanager_config
from engine.generate.pipeline import by_service, service_rule_groups
from engine.generate.provisioning import provisioning_files
from engine.generate.render import to_json, to_yaml
from engine.spec.loader import load_specs

ROOT = Path(__file__).resolve().parents[1]

TRICKY = [
    "",
    "yes",
    "No",
    "null",
    "~",
    "1:30",
    "0x1F",
    "1e3",
    "12",
    "a: b",
    "a #b",
    "-x",
    "x:",
    "trailing ",
    " leading",
    "it's",
    '{"json": 1}',
    "[1, 2]",
    "*alias",
    "&anchor",
    "!tag",
    "|pipe",
    ">fold",
    "%directive",
    "@at",
    "`tick",
    "tab\there",
    "ünïcödé × 14.4",
    'sum(rate(x{job="api",code=~"5.."}[5m])) > 0.0144',
    "line one\nline two",
    "line one\n\nline three",
    "trailing newline\n",
    " indented first\nline",
    "trailing space \nline",
    "{{ $value | humanize }}× {{ with query `x` }}{{ end }}",
]


@pytest.mark.parametrize("text", TRICKY)
def test_strings_round_trip(text: str) -> None:
    data = {"key": text, "list": [text, {"k": text, "n": 1}], "nested": {"deep": [text]}}
    assert yaml.safe_load(to_yaml(data)) == data


def test_scalars_and_empty_collections_round_trip() -> None:
    data = {"t": True, "f": False, "i": 3, "x": 0.5, "none": None, "d": {}, "l": [], "s": ["a"]}
    assert yaml.safe_load(to_yaml(data, "a header\n\nwith a blank line")) == data
    assert to_yaml({"a": 1}, "h").startswith("# h\n")


def test_every_generated_yaml_round_trips() -> None:
    slos = load_specs([ROOT / "slo_specs", ROOT / "tests" / "promtool" / "specs"]).slos
    for _, group in by_service(slos):
        data = {"groups": service_rule_groups(group)}
        assert yaml.safe_load(to_yaml(data)) == data
    assert yaml.safe_load(to_yaml(alertmanager_config(slos))) == alertmanager_config(slos)
    for _, data in provisioning_files():
        assert yaml.safe_load(to_yaml(data)) == data


def test_json_is_indented_and_ends_with_a_newline() -> None:
    assert to_json({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}\n'
