"""The one YAML loader of the package: safe tags only, and bounded, so that a file a person hands us can
neither run code nor exhaust the machine.

PyYAML shares the node an alias points at, so a "billion laughs" file of a few hundred bytes (each anchor
a list of ten aliases of the one before) composes quickly but expands to 10^9 values as soon as anything
walks it (pydantic, json, a merge key). Before a document is constructed, its node graph is measured with
every alias counted as the copy it stands for; beyond `MAX_NODES` (or a recursive alias, or nesting deeper
than `MAX_DEPTH`) the file is refused with its name. Files over `MAX_BYTES` are not read at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Bytes read of one file: far above any catalog, manifest, inventory fragment or plan.
MAX_BYTES = 16 << 20
#: Values in one document, every alias counted as the copy it stands for.
MAX_NODES = 1_000_000
#: Values reached through aliases: anchors are for a few shared settings, not for multiplying data.
MAX_ALIASED = 10_000
#: Nesting of mappings and lists.
MAX_DEPTH = 100

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(yaml.YAMLError):
    """The file is not YAML we accept. str(): the file, the line where there is one, and the reason;
    `reason` alone for callers that name the file themselves."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        super().__init__(f"{source}{f', line {line}' if line else ''}: {reason}")


class _BoundedLoader(_Loader):  # type: ignore[misc,valid-type]
    source = "<string>"

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            _check_graph(node, self.source)
        return node


def _check_graph(root: yaml.Node, source: str) -> None:
    """Refuse a node graph whose expansion exceeds the bounds (iteratively: no recursion to overflow)."""
    expanded: dict[int, int] = {}  # id(node) -> values it expands to, itself included
    distinct = 0
    on_path: set[int] = set()
    # (node, depth, children pushed?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(expanded[id(child)] for child in _children(node))
            if total > MAX_NODES:
                _refuse(source, node, f"it expands to more than {MAX_NODES:,} values (aliases of aliases)")
            expanded[key] = total
            continue
        if key in expanded:
            continue
        if key in on_path:
            _refuse(source, node, "an alias refers to a value that contains it (a recursive alias)")
        if depth > MAX_DEPTH:
            _refuse(source, node, f"values are nested more than {MAX_DEPTH} deep")
        distinct += 1
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            child_key = id(child)
            if child_key in on_path:
                _refuse(source, child, "an alias refers to a value that contains it (a recursive alias)")
            if child_key not in expanded:
                stack.append((child, depth + 1, False))
    aliased = expanded[id(root)] - distinct
    if aliased > MAX_ALIASED:
        _refuse(
            source,
            root,
            f"aliases stand for {aliased:,} copied values (at most {MAX_ALIASED:,}): "
            "an alias bomb, or anchors used to multiply data",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _refuse(source: str, node: yaml.Node, reason: str) -> None:
    mark = node.start_mark
    raise YamlError(source, f"refused: {reason}", mark.line + 1 if mark is not None else None)


def load_text(text: str | bytes, source: str = "<string>") -> Any:
    """The document in `text` (None when empty); YamlError naming `source` when it is not acceptable."""
    if len(text) > MAX_BYTES:
        raise YamlError(source, f"refused: larger than {MAX_BYTES >> 20} MiB")
    loader = _BoundedLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except YamlError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlError(source, f"invalid YAML: {exc}", mark.line + 1 if mark is not None else None) from None
    except RecursionError:
        raise YamlError(source, "refused: values are nested too deep") from None
    finally:
        loader.dispose()


def load_file(path: str | Path) -> Any:
    """The document in the file at `path`; OSError when it cannot be read, YamlError when refused."""
    path = Path(path)
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlError(str(path), f"refused: larger than {MAX_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    return load_text(text, str(path))
