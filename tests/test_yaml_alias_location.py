"""Issue #12, item 4: an alias bomb is refused at the `*alias` that takes the document past
the limit (line:col of that alias, naming its anchor's line), not at 1:1 — in spec files
and in the daemon config, with libyaml and with the pure-Python parser alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import _register, app
from engine.daemon.config import ConfigError, load_config
from engine.spec import yaml_lines
from engine.spec.loader import load_specs
from engine.spec.yaml_safety import MAX_ALIAS_NODES

_register()
runner = CliRunner()

HEADER = "apiVersion: slo-engine/v1\nservice: api\n"
CONFIG = "prometheus_url: http://127.0.0.1:9\nspecs: [specs]\nstate_dir: state\n"


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(yaml_lines, "LIBYAML", request.param == "libyaml")
    return str(request.param)


def chain(levels: int, prefix: str = "a") -> str:
    """Anchors `a0` … `a<levels>`, each a list of ten aliases of the one before (`a0` holds
    ten strings): `aK` stands for (10^(K+2) - 1) / 9 nodes."""
    text = f"{prefix}0: &{prefix}0 [{', '.join(['x'] * 10)}]\n"
    for k in range(1, levels + 1):
        text += f"{prefix}{k}: &{prefix}{k} [{', '.join([f'*{prefix}{k - 1}'] * 10)}]\n"
    return text


# Levels 1-3 add 110 + 1,110 + 11,110 = 12,330 nodes; seven *a3 (11,111 each) 77,777 more:
# 90,107, under the limit. `*big` (77,778 nodes) is the alias that crosses it.
UNDER = chain(3) + f"big: &big [{', '.join(['*a3'] * 7)}]\n"
BIG_USE = "slos: *big\n"


def _big_use_position(text: str) -> tuple[int, int]:
    line = text[: text.index(BIG_USE)].count("\n") + 1
    return line, len("slos: ") + 1


def test_the_document_below_the_limit_is_accepted(parser: str) -> None:
    parsed = yaml_lines.parse_yaml(UNDER)
    assert parsed.syntax_error is None
    assert len(parsed.documents[0].data["big"]) == 7


def test_spec_bomb_points_at_the_alias_that_crosses_the_limit(tmp_path: Path, parser: str) -> None:
    text = HEADER + UNDER + BIG_USE
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    (error,) = load_specs([path]).errors
    assert (error.line, error.column) == _big_use_position(text) == (8, 7)
    assert error.text.startswith(
        f"invalid YAML: aliases expand this document by over {MAX_ALIAS_NODES:,} nodes; "
        "this *big adds 77,778 (its anchor &big is on line 7)"
    ), error.text


def test_a_chain_of_anchors_is_refused_inside_the_chain(tmp_path: Path, parser: str) -> None:
    # a4's eighth *a3 takes 12,330 + 8 × 11,111 past 100,000: that is where it stops, long
    # before the `*a8` that uses the chain.
    text = HEADER + chain(8) + "slos:\n  - name: a\n    objective: *a8\n"
    path = tmp_path / "chain.yaml"
    path.write_text(text)
    (error,) = load_specs([path]).errors
    a4 = text.splitlines()[6]
    assert a4.startswith("a4: &a4 [")
    eighth = a4.index("*a3", len("a4: &a4 [") + 7 * len("*a3, "))
    assert (error.line, error.column) == (7, eighth + 1)
    assert "this *a3 adds 11,111 (its anchor &a3 is on line 6)" in error.text


def test_validate_prints_the_alias_position_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(HEADER + UNDER + BIG_USE)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}:8:7: invalid YAML: aliases expand this document" in result.stdout


def test_config_bomb_points_at_the_alias(tmp_path: Path, parser: str) -> None:
    path = tmp_path / "config.yml"
    text = CONFIG + UNDER.replace("x", '"http://x/a"') + "webhooks: *big\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    line = text.count("\n")  # the last line
    assert problem.startswith(
        f"{path}:{line}:{len('webhooks: ') + 1}: invalid YAML: aliases expand this document"
    ), problem
    assert "*big adds 77,778 (its anchor &big is on line 8)" in problem


def test_merge_keys_of_a_config_still_count_per_use(tmp_path: Path, parser: str) -> None:
    # `<<: *defaults` is an alias too: many merges of a big mapping are refused where the
    # merge that crosses the limit is written.
    keys = "".join(f"  k{i}: [{', '.join(['v'] * 99)}]\n" for i in range(100))  # 10,101 nodes
    merges = "".join(f"m{i}:\n  <<: *defaults\n" for i in range(10))
    path = tmp_path / "config.yml"
    text = CONFIG + "defaults: &defaults\n" + keys + merges
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    # The tenth merge (10 × 10,101 > 100,000) is on the last line, after `  <<: `.
    assert problem.startswith(f"{path}:{text.count(chr(10))}:7: invalid YAML: aliases"), problem


def test_a_recursive_alias_is_still_refused(parser: str) -> None:
    parsed = yaml_lines.parse_yaml("a: &l [1, *l]\nb: *l\n")
    assert parsed.syntax_error is not None
    assert parsed.syntax_error.message.startswith(
        "invalid YAML: an alias refers to the collection it is inside"
    )
    assert (parsed.syntax_error.mark.line, parsed.syntax_error.mark.column) == (1, 4)
