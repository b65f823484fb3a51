"""The `bandit-service` command: `serve` runs the HTTP service (more operator commands can join it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]


def _serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the ASGI app; BANDIT_* environment variables configure the service."""
    import uvicorn  # imported here so that other subcommands start fast

    uvicorn.run(
        "bandit_service.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command (each sets `handler`)."""
    parser = argparse.ArgumentParser(prog="bandit-service", description="Adaptive multi-armed bandit service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service. BANDIT_DATABASE_URL selects the database (default sqlite:///bandit.db).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
