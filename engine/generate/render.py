"""Text rendering for generated files: byte-for-byte stable YAML and JSON.

Stable means: keys in the order the generators built them, multi-line PromQL as literal
blocks (readable in review), no timestamps, no line wrapping, a trailing newline.

YAML is written by a small emitter of our own rather than PyYAML's: the rule files for
1,000 SLOs are ~13 MB and PyYAML's pure-Python emitter alone took 12 s for them. It covers
exactly the shapes the generators build (mappings, lists, strings, numbers, booleans) and
quotes any string PyYAML would not read back as the same string; a test round-trips every
generated file through `yaml.safe_load`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

# A plain (unquoted) block scalar may not start with an indicator character; after that,
# only ": " and " #" are special (checked separately).
_PLAIN = re.compile(r"^[A-Za-z0-9_./$=~(][^\t]*$")
_RESOLVER = yaml.resolver.Resolver()


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if (
        _PLAIN.match(text)
        and text.isprintable()
        and not text.endswith((" ", ":"))
        and ": " not in text
        and " #" not in text
        and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"
    ):
        return text
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text, ensure_ascii=False)


def _block(text: str, indent: str) -> str | None:
    """A literal block for multi-line text, or None when one cannot represent it exactly."""
    lines = text.split("\n")
    if text.endswith("\n") or not lines[0] or lines[0][0] == " ":
        return None
    if not all(line.isprintable() and not line.endswith(" ") for line in lines):
        return None
    return "|-\n" + "\n".join(f"{indent}{line}" if line else "" for line in lines)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Append `value` as a block collection's lines (each ending in a newline)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _entry(f"{indent}{_scalar(key)}:", item, indent, out)
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first = True
                for key, sub in item.items():
                    prefix = f"{indent}- " if first else f"{indent}  "
                    _entry(f"{prefix}{_scalar(key)}:", sub, indent + "  ", out)
                    first = False
            else:
                _entry(f"{indent}-", item, indent, out)


def _entry(head: str, value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict | list):
        if not value:
            out.append(f"{head} {'{}' if isinstance(value, dict) else '[]'}\n")
            return
        out.append(f"{head}\n")
        # Lists under a key sit at the key's indentation, as PyYAML writes them.
        _emit(value, indent + "  " if isinstance(value, dict) else indent, out)
        return
    if isinstance(value, str) and "\n" in value:
        block = _block(value, indent + "  ")
        if block is not None:
            out.append(f"{head} {block}\n")
            return
    out.append(f"{head} {_scalar(value)}\n")


def to_yaml(data: dict[str, Any], header: str = "") -> str:
    out = ["# " + line + "\n" if line else "#\n" for line in header.splitlines()]
    _emit(data, "", out)
    return "".join(out)


def to_json(data: Any) -> str:
    """JSON for Grafana; foundation-SDK objects serialise through their own encoder."""
    return json.dumps(data, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"
