"""
Write deploy/elasticsearch/index-template.json from the log-line schema beside it.

The JSON Schema ``deploy/elasticsearch/lc-trace-logs.schema.json`` is the one source: the test
suite checks every line lc_trace writes against it, and this script turns its
``x-elasticsearch`` annotations into the composable index template the compose stack loads
(``PUT _index_template/lc-trace-logs``). Dotted keys become nested ``properties``
(``trace.id`` -> ``trace: {properties: {id: ...}}``); ``patternProperties`` become dynamic
templates under an object that alone is ``dynamic: true``; the root is ``dynamic: false``, so a
field nobody declared stays in ``_source`` and is never guessed into a type that a later line
conflicts with. Only core field types are used, so the template loads on Elasticsearch 7.10
and 9.x alike.

Usage::

    python scripts/gen_index_template.py          # (re)write the template
    python scripts/gen_index_template.py --check  # exit 1, with a diff, if the committed file is stale
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "deploy" / "elasticsearch" / "lc-trace-logs.schema.json"
TEMPLATE = ROOT / "deploy" / "elasticsearch" / "index-template.json"

NAME = "lc-trace-logs"
INDEX_PATTERNS = ["lc-trace-logs-*"]
PRIORITY = 200  # above the stack's built-in templates (100), which match other patterns anyway
# The lifecycle policy, where the node has ILM: deploy/setup/setup.sh writes this component template first.
COMPOSED_OF = ["lc-trace-logs-lifecycle"]
SETTINGS = {"index": {"number_of_shards": 1, "number_of_replicas": 0}}  # one local node
CORE_TYPES = frozenset({"keyword", "text", "long", "double", "boolean", "date", "object"})

__all__ = ["build", "main", "mapping_leaves", "render"]


def _place(tree: dict[str, Any], key: str, leaf: dict[str, Any]) -> None:
    """
    Put *leaf* at dotted *key* in a ``properties`` tree, refusing a key that is both a value
    and the prefix of another (Elasticsearch maps ``a.b`` as a value or an object, never both).
    """
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"{key!r}: a field name part is empty")
    if leaf.get("type") not in CORE_TYPES:
        raise ValueError(f"{key!r}: type {leaf.get('type')!r} is not one of {sorted(CORE_TYPES)}")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {"properties": {}})
        if child.get("type", "object") != "object":
            raise ValueError(f"{key!r}: {'.'.join(parts[: depth + 1])!r} is a value, it cannot hold {key!r}")
        node = child.setdefault("properties", {})
    last = parts[-1]
    if last in node:
        raise ValueError(f"{key!r}: declared twice, or the prefix of another key")
    node[last] = dict(leaf)


def _sorted(tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(tree):
        node = dict(tree[name])
        if "properties" in node:
            node["properties"] = _sorted(node["properties"])
        out[name] = node
    return out


def build(schema: dict[str, Any]) -> dict[str, Any]:
    """
    The index template for *schema* (the parsed log-line JSON Schema).
    """
    properties: dict[str, Any] = {}
    for key, prop in schema["properties"].items():
        _place(properties, key, prop["x-elasticsearch"])
    for key, mapping in schema.get("x-elasticsearch-shipper-fields", {}).get("properties", {}).items():
        _place(properties, key, mapping)
    dynamic_templates: list[dict[str, Any]] = []
    for pattern, prop in schema.get("patternProperties", {}).items():
        dynamic = prop["x-elasticsearch-dynamic-template"]
        path = dynamic["path_match"]
        if not path.endswith(".*"):
            raise ValueError(f"{pattern!r}: path_match must name the keys under one object ('prefix.*'), got {path!r}")
        mapping = prop["x-elasticsearch"]
        if mapping.get("type") not in CORE_TYPES:
            raise ValueError(f"{pattern!r}: type {mapping.get('type')!r} is not one of {sorted(CORE_TYPES)}")
        # The root is dynamic: false, and dynamic templates apply only where mapping is dynamic.
        _place(properties, path[:-2], {"type": "object", "dynamic": True})
        dynamic_templates.append(
            {dynamic["name"]: {"path_match": path, "match_mapping_type": "*", "mapping": dict(mapping)}}
        )
    ecs_version = schema["properties"]["ecs.version"]["const"]
    return {
        "index_patterns": INDEX_PATTERNS,
        "priority": PRIORITY,
        "composed_of": COMPOSED_OF,
        "_meta": {
            "description": "lc_trace log lines (ECS JSON lines shipped by Filebeat)",
            "schema": "deploy/elasticsearch/lc-trace-logs.schema.json",
            "generated_by": "scripts/gen_index_template.py",
            "ecs_version": ecs_version,
        },
        "template": {
            "settings": SETTINGS,
            "mappings": {
                "dynamic": False,
                "dynamic_templates": dynamic_templates,
                "properties": _sorted(properties),
            },
        },
    }


def render(template: dict[str, Any]) -> str:
    """
    The template as the committed file holds it: two-space JSON and a final newline.
    """
    return json.dumps(template, indent=2, ensure_ascii=False) + "\n"


def mapping_leaves(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """
    Every mapped field of a ``properties`` tree by dotted name (objects with properties are walked).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, node in properties.items():
        key = f"{prefix}{name}"
        if "properties" in node:
            out.update(mapping_leaves(node["properties"], f"{key}."))
        else:
            out[key] = node
    return out


def _shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    """
    Write the template, or with ``--check`` compare it with the committed file.
    """
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed template is stale")
    args = parser.parse_args(argv)
    expected = render(build(json.loads(SCHEMA.read_text(encoding="utf-8"))))
    target, source = _shown(TEMPLATE), _shown(SCHEMA)
    if args.check:
        actual = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.exists() else ""
        if actual == expected:
            print(f"{target} is up to date with {source}")
            return 0
        diff = difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{target} (committed)",
            tofile=f"{target} (generated from the schema)",
        )
        sys.stderr.write(
            f"{target} is stale: it does not match {source}.\n"
            f"Run `python scripts/gen_index_template.py` and commit the result.\n\n"
        )
        sys.stderr.writelines(diff)
        return 1
    TEMPLATE.write_text(expected, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
