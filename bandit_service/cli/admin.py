"""`keys` (on the database, or over HTTP with --remote) and `features` (over HTTP)."""

from __future__ import annotations

import json
import os

import click

from bandit_service.cli.context import INPUT_ERROR, SERVICE_ERROR, echo_json, fail, make_console, remote
from bandit_service.cli.tables import features_table, keys_table
from bandit_service.client.manage import Json, Management

__all__ = ["features", "keys"]

ROLES = ("decide", "read", "operate", "admin")
remote_flag = click.option(
    "--remote", is_flag=True, help="Over HTTP at --url with an admin --api-key, instead of on the database."
)


def _local(command: str, name: str | None, role: str | None) -> None:
    """Run a key command on the database of BANDIT_DATABASE_URL (no service needed)."""
    from sqlalchemy.exc import SQLAlchemyError  # imported here: the HTTP commands start without SQLAlchemy

    from bandit_service.key_commands import KeyCommandError, run_key_command

    try:
        run_key_command(command, name, role, os.environ)
    except KeyCommandError as exc:
        fail(exc, INPUT_ERROR)
    except SQLAlchemyError as exc:
        fail(f"the database failed: {exc}", SERVICE_ERROR)


@click.group(
    help="Create, list or revoke API keys: on the database named by BANDIT_DATABASE_URL (default "
    "sqlite:///bandit.db; no running service needed), or with --remote over HTTP (an admin key). Roles, each "
    "allowing what the one before allows: decide (decisions and rewards), read (also experiments, reports, "
    "audit log, metrics), operate (also create, change, start, pause, complete, weights, exposure, ramps), "
    "admin (also keys)."
)
def keys() -> None:
    """API keys."""


@keys.command(name="create")
@click.option("--name", required=True, help="Who holds the key (the audit log's actor).")
@click.option("--role", required=True, type=click.Choice(ROLES))
@remote_flag
@remote
def create_key(manage: Management, name: str, role: str, remote: bool) -> None:
    """Make a key and print it (its last line; shown this once)."""
    if not remote:
        _local("create", name, role)
        return
    made = manage.create_key(name, role)
    click.echo(f"created key {made['name']!r} with role {made['role']!r}; it will not be shown again:")
    click.echo(made["key"])


@keys.command(name="list")
@remote_flag
@click.option("--json", "as_json", is_flag=True, help="With --remote: print the JSON.")
@remote
def list_keys(manage: Management, remote: bool, as_json: bool) -> None:
    """Names, roles, creation and last use (never the keys)."""
    if not remote:
        _local("list", None, None)
        return
    found = manage.list_keys()
    echo_json(found) if as_json else make_console().print(keys_table(found))


@keys.command(name="revoke")
@click.argument("name")
@remote_flag
@remote
def revoke_key(manage: Management, name: str, remote: bool) -> None:
    """Revoke a key by name (not the last admin key)."""
    if not remote:
        _local("revoke", name, None)
        return
    removed = manage.revoke_key(name)
    click.echo(f"revoked key {removed['name']!r} (role {removed['role']!r})")


@click.group()
def features() -> None:
    """Features: what apps ask for by name, with a default payload; experiments attach to one."""


def _feature_line(feature: Json) -> str:
    served = feature.get("experiments")
    by = "" if served is None else f"; experiments in order: {', '.join(e['key'] for e in served) or 'none'}"
    return f"{feature['key']}: default payload {json.dumps(feature['default_payload'])}{by}"


@features.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON.")
@remote
def list_features(manage: Management, as_json: bool) -> None:
    """Every feature, by key."""
    found = manage.list_features()
    echo_json(found) if as_json else make_console().print(features_table(found))


@features.command(name="show")
@click.argument("key")
@remote
def show_feature(manage: Management, key: str) -> None:
    """A feature with its experiments in evaluation order, as JSON."""
    echo_json(manage.feature(key))


@features.command(name="put")
@click.argument("key")
@click.option("--default-payload", "payload", required=True, help="JSON apps get when no experiment serves them.")
@click.option("--description", default="", help="What the feature is for.")
@remote
def put_feature(manage: Management, key: str, payload: str, description: str) -> None:
    """Create or replace a feature."""
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--default-payload") from None
    make_console().print(_feature_line(manage.put_feature(key, value, description=description)))


@features.command(name="delete")
@click.argument("key")
@remote
def delete_feature(manage: Management, key: str) -> None:
    """Delete a feature no active or paused experiment serves."""
    make_console().print(f"deleted {_feature_line(manage.delete_feature(key))}")
