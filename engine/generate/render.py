"""Text rendering for generated files: byte-for-byte stable YAML and JSON.

Stable means: keys in the order the generators built them, multi-line PromQL as literal
blocks (readable in review), no timestamps, no line wrapping, a trailing newline.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: Any, header: str = "") -> str:
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1_000_000,
        default_flow_style=False,
    )
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body


def to_json(data: Any) -> str:
    """JSON for Grafana; foundation-SDK objects serialise through their own encoder."""
    return json.dumps(data, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"
