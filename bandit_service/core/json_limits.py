"""Limits on JSON shape: nesting depth of a raw body, and the content of free-form JSON values.

msgspec decodes recursively and raises RecursionError on very deep input, so a body's depth is
measured on its bytes *before* decoding, with numpy in linear time and without recursion: a
quote is real unless an odd run of backslashes precedes it, a byte is inside a string when an
odd number of real quotes precede it, and the depth is the running sum of the brackets outside
strings. (No regular expression: a string pattern can take quadratic time on hostile input.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["body_depth", "deep_path", "exceeds_depth", "free_json_problem"]

_QUOTE, _BACKSLASH, _COMMA, _COLON = 34, 92, 44, 58
_OPENERS, _CLOSERS = (91, 123), (93, 125)  # [ {  and  ] }


def _structure(body: bytes) -> tuple[NDArray[np.uint8], NDArray[np.bool_], NDArray[np.int64]]:
    """Bytes, real-quote mask and depth after each byte (brackets inside strings ignored)."""
    a = np.frombuffer(body, dtype=np.uint8)
    quote = a == _QUOTE
    backslash = a == _BACKSLASH
    if backslash.any():
        idx = np.arange(a.size)
        last_other = np.maximum.accumulate(np.where(backslash, -1, idx))
        run = idx - last_other  # backslashes ending at each byte
        before = np.concatenate(([0], run[:-1]))
        quote &= before % 2 == 0
    inside = (np.cumsum(quote) % 2 == 1) & ~quote
    opens = np.isin(a, _OPENERS) & ~inside
    closes = np.isin(a, _CLOSERS) & ~inside
    depth = np.cumsum(opens.astype(np.int64) - closes.astype(np.int64))
    return a, quote, depth


def body_depth(body: bytes) -> int:
    """Maximum nesting depth of JSON text (0 for a scalar; a best effort for malformed text)."""
    if not body or body.count(b"[") + body.count(b"{") == 0:
        return 0
    return int(_structure(body)[2].max())


def exceeds_depth(body: bytes, limit: int) -> bool:
    """Whether the body nests deeper than `limit` (free when it has no more brackets than that)."""
    return body.count(b"[") + body.count(b"{") > limit and body_depth(body) > limit


def deep_path(body: bytes, limit: int, stop_after: frozenset[str] = frozenset(), max_parts: int = 6) -> str:
    """Where the first container deeper than `limit` sits, like `arms[0].payload` (for error messages).

    The path stops after a key in `stop_after` (free-form fields: what lies below is the user's
    data) or after `max_parts` parts.
    """
    a, quote, depth = _structure(body)
    deeper = np.flatnonzero(depth > limit)
    if deeper.size == 0:
        return "body"
    breach = int(deeper[0]) + 1
    a, quote, depth = a[:breach], quote[:breach], depth[:breach]
    is_open = np.isin(a, _OPENERS) & (np.concatenate(([0], depth[:-1])) < depth)
    parts: list[str] = []
    parent = int(np.flatnonzero(is_open & (depth == 1))[0])
    for level in range(2, min(limit, max_parts) + 2):
        here = int(np.flatnonzero(is_open & (depth == level))[-1])
        if a[parent] == ord("["):
            commas = (a[parent:here] == _COMMA) & (depth[parent:here] == level - 1)
            parts.append(f"[{int(commas.sum())}]")
        else:
            quotes = np.flatnonzero(quote[parent:here]) + parent
            key = body[quotes[-2] + 1 : quotes[-1]].decode(errors="replace") if quotes.size >= 2 else "?"
            parts.append(f".{key}" if parts else key)
            if key in stop_after:
                break
        parent = here
    return "".join(parts) or "body"


def free_json_problem(value: Any) -> str | None:
    """Why a free-form JSON value cannot be stored (a NUL character), or None if it can."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "strings may not contain NUL characters"
        elif isinstance(item, dict):
            for k, v in item.items():
                if "\x00" in k:
                    return "keys may not contain NUL characters"
                todo.append(v)
        elif isinstance(item, list):
            todo.extend(item)
    return None
