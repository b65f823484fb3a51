"""The `bandit-service` command: `main` (the console script), `cli` (the click group), `parse`.

main.py is the group with `serve`, `migrate` and `demo`; experiments.py, admin.py and offline.py
hold the other commands; context.py the shared options and one-line errors; tables.py the rich
tables; values.py the parsing of command-line values; template.py the spec `new` writes.
"""

from bandit_service.cli.main import cli, main, parse

__all__ = ["cli", "main", "parse"]
