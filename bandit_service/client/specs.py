"""Experiment specs from YAML, TOML or JSON files (or standard input), with one-line errors.

The format follows the file's suffix (`.yaml`/`.yml`, `.toml`, `.json`); standard input (`-`)
takes a format or is sniffed. A missing file, a parse error (with its line) or a spec that is not
a mapping raise `SpecError`, a `BanditError` whose text is one line naming the file.
PyYAML is imported only when a YAML spec is read.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from bandit_service.client.manage_core import BanditError

if TYPE_CHECKING:
    import yaml

__all__ = ["FORMATS", "SpecError", "SpecFormat", "load_document", "load_spec", "parse_document", "sniff_format"]

SpecFormat = Literal["yaml", "toml", "json"]
FORMATS: dict[str, SpecFormat] = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
_TOML_LINE = re.compile(r"""^\s*(\[[^\]\n]+\]|[A-Za-z0-9_."'-]+\s*=)""", re.MULTILINE)
_YAML_KEY = re.compile(r"""^\s*(- )?[A-Za-z0-9_"'-]+\s*:""", re.MULTILINE)
_TOML_WHERE = re.compile(r"\(at line (\d+), column (\d+)\)")


class SpecError(BanditError):
    """A spec that cannot be read or parsed: a local input error, found before any request."""


def sniff_format(text: str) -> SpecFormat:
    """JSON for an object, TOML for `[table]` or `key = value` lines without YAML's `key:`, else YAML."""
    if text.lstrip().startswith("{"):
        return "json"
    return "toml" if _TOML_LINE.search(text) and not _YAML_KEY.search(text) else "yaml"


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that refuses a key given twice (json.loads would keep the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


@functools.cache
def _yaml_loader() -> type[yaml.SafeLoader]:
    """PyYAML's safe loader that refuses a key given twice (its default keeps the last one)."""
    import yaml  # imported here: only YAML specs need it

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _parse_yaml(text: str, name: str) -> Any:
    import yaml  # imported here: only YAML specs need it

    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f" ({exc.context})" if exc.context else ""
        raise SpecError(f"{name}: not valid YAML{where}: {exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{name}: not valid YAML: {exc}") from None


def parse_document(text: str, format: SpecFormat, name: str = "<spec>") -> Any:
    """The document in `text`; a parse error is a SpecError naming `name` and the line."""
    match format:
        case "json":
            try:
                return json.loads(text, object_pairs_hook=_unique_json_keys)
            except json.JSONDecodeError as exc:
                raise SpecError(f"{name}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
            except ValueError as exc:  # a duplicate key (no position from the hook)
                raise SpecError(f"{name}: not valid JSON: {exc}") from None
        case "toml":
            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                message = str(exc)
                found = _TOML_WHERE.search(message)
                where = f" at line {found[1]}, column {found[2]}" if found else ""
                problem = _TOML_WHERE.sub("", message).strip()
                raise SpecError(f"{name}: not valid TOML{where}: {problem}") from None
        case "yaml":
            return _parse_yaml(text, name)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a spec file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load_document(
    source: str | os.PathLike[str], *, format: SpecFormat | None = None, stdin: TextIO | None = None
) -> Any:
    """The YAML, TOML or JSON document in a file (format by suffix, or `format`), or in stdin for `-`."""
    if str(source) == "-":
        text = (stdin if stdin is not None else sys.stdin).read()
        return parse_document(text, format or sniff_format(text), "<stdin>")
    path = Path(source)
    if format is None:
        format = FORMATS.get(path.suffix.lower())
        if format is None:
            known = ", ".join(FORMATS)
            raise SpecError(f"{path}: unknown spec format {path.suffix or '(no suffix)'!r}; use one of {known}")
    return parse_document(_read(path), format, str(path))


def load_spec(
    source: str | os.PathLike[str], *, format: SpecFormat | None = None, stdin: TextIO | None = None
) -> dict[str, Any]:
    """An experiment spec: a mapping of its fields (key, name, arms, policy, ...)."""
    spec = load_document(source, format=format, stdin=stdin)
    if not isinstance(spec, dict):
        name = "<stdin>" if str(source) == "-" else str(source)
        kind = "nothing" if spec is None else f"a {type(spec).__name__}"
        raise SpecError(f"{name}: a spec is a mapping of fields (key, name, arms, ...), this file holds {kind}")
    return spec
