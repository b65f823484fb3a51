"""Operator commands over HTTP: create, list, show, start, pause, complete, reweight, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

__all__ = ["OperatorError", "run_operator"]


class OperatorError(Exception):
    """The service refused the command (its problem detail) or could not be reached."""


def _request(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise OperatorError(f"cannot reach the service at {http.base_url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = problem.get("detail", response.text)
            field = problem.get("field")
        except ValueError:
            detail, field = response.text, None
        where = f" (field: {field})" if field else ""
        raise OperatorError(f"{response.status_code}: {detail}{where}")
    return response


def _spec(source: str, stdin: TextIO) -> Any:
    text = stdin.read() if source == "-" else Path(source).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OperatorError(f"{source}: not valid JSON ({exc})") from exc


def run_operator(command: str, args: Any, http: httpx.Client, out: TextIO | None = None) -> None:
    """Run one operator command against the service behind `http` and print its answer."""
    out = out if out is not None else sys.stdout
    match command:
        case "create":
            response = _request(http, "POST", "/v1/experiments", json=_spec(args.spec, sys.stdin))
        case "list":
            params = {"status": args.status} if args.status else {}
            response = _request(http, "GET", "/v1/experiments", params=params)
        case "show":
            response = _request(http, "GET", f"/v1/experiments/{args.key}")
        case "start" | "pause" | "reweight":
            response = _request(http, "POST", f"/v1/experiments/{args.key}/{command}")
        case "complete":
            response = _request(http, "POST", f"/v1/experiments/{args.key}/complete", json={"winner": args.winner})
        case "report":
            params = {"format": "json" if args.json else "text"}
            if args.segment:
                params["segment"] = args.segment
            response = _request(http, "GET", f"/v1/experiments/{args.key}/report", params=params)
            if not args.json:
                out.write(response.text.rstrip("\n") + "\n")
                return
        case _:
            raise OperatorError(f"unknown command {command!r}")
    out.write(json.dumps(response.json(), indent=2) + "\n")
