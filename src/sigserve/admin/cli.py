"""`sigserve registry register | alias set | alias delete | list | show`: an MLflow-layout model
registry in a SQLite database, written without MLflow (sigserve.admin.embedded).

Every command prints one JSON object on stdout; an error prints `sigserve: <one line>` on stderr
and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any

from sigserve.errors import SigserveError
from sigserve.admin.embedded import EmbeddedRegistry, RegistryError
from sigserve.sources.settings import SourceSettings

_URI_HELP = "registry database (default $MLFLOW_REGISTRY_URI, $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"


def _uri_flag(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: accepted before or after the subcommand, and a later level never resets it
    parser.add_argument("--registry-uri", default=argparse.SUPPRESS, help=_URI_HELP)


def add_registry_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `registry …` to a parser's subcommands (the `add_subparsers()` object)."""
    registry = subparsers.add_parser(
        "registry", help="register models and set aliases in a SQLite registry, without MLflow",
        description="Register model directories and manage aliases in a SQLite database laid out as "
                    "MLflow 3's registry; models:/name@alias then resolves with sigserve and MLflow alike.",
    )
    _uri_flag(registry)
    actions = registry.add_subparsers(dest="registry_command", required=True, metavar="{register,alias,list,show}")

    register = actions.add_parser("register", help="copy a model directory into the registry as a new version")
    register.add_argument("--name", required=True, help="registered model name")
    register.add_argument("--path", required=True, help="model directory (with an MLmodel file)")
    register.add_argument("--alias", default=None, help="also point this alias at the new version")
    register.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                          help="version tag (repeatable)")
    register.add_argument("--description", default=None, help="version description")
    _uri_flag(register)

    alias = actions.add_parser("alias", help="set or delete an alias")
    _uri_flag(alias)
    alias_actions = alias.add_subparsers(dest="alias_command", required=True, metavar="{set,delete}")
    alias_set = alias_actions.add_parser("set", help="point an alias at a version (moves it if set)")
    alias_set.add_argument("--name", required=True)
    alias_set.add_argument("--alias", required=True)
    alias_set.add_argument("--version", required=True)
    _uri_flag(alias_set)
    alias_delete = alias_actions.add_parser("delete", help="remove an alias")
    alias_delete.add_argument("--name", required=True)
    alias_delete.add_argument("--alias", required=True)
    _uri_flag(alias_delete)

    listing = actions.add_parser("list", help="registered models, latest versions and aliases")
    _uri_flag(listing)

    show = actions.add_parser("show", help="one model's versions, sources, stages, aliases and tags")
    show.add_argument("name")
    _uri_flag(show)
    return registry


def run_registry_command(args: argparse.Namespace) -> int:
    try:
        uri = SourceSettings.from_env(registry_uri=getattr(args, "registry_uri", None)).registry()
    except SigserveError as exc:
        return _fail(exc.message)
    try:
        with EmbeddedRegistry(uri) as registry:
            document = _dispatch(registry, args)
    except SigserveError as exc:
        return _fail(exc.message)
    except sqlite3.Error as exc:
        return _fail(f"registry database {uri}: {exc}")
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    sys.stdout.write(json.dumps(document) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: `registry register …`, or the same without the leading `registry`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "registry":
        argv.insert(0, "registry")
    parser = argparse.ArgumentParser(prog="sigserve")
    add_registry_commands(parser.add_subparsers(dest="command", required=True))
    return run_registry_command(parser.parse_args(argv))


def _dispatch(registry: EmbeddedRegistry, args: argparse.Namespace) -> dict[str, Any]:
    where = {"registry": registry.uri, "database": str(registry.path)}
    command = args.registry_command
    if command == "register":
        version = registry.register(args.name, args.path, alias=args.alias, tags=_tags(args.tag),
                                    description=args.description)
        record = next(v for v in registry.show(args.name)["versions"] if v["version"] == str(version))
        return {**where, "name": args.name, "model_uri": f"models:/{args.name}/{version}", **record}
    if command == "alias" and args.alias_command == "set":
        previous = registry.set_alias(args.name, args.alias, args.version)
        return {**where, "name": args.name, "alias": args.alias, "version": str(int(args.version)),
                "previous_version": None if previous is None else str(previous),
                "model_uri": f"models:/{args.name}@{args.alias}"}
    if command == "alias" and args.alias_command == "delete":
        deleted = registry.delete_alias(args.name, args.alias)
        return {**where, "name": args.name, "alias": args.alias, "deleted": True, "version": str(deleted)}
    if command == "list":
        return {**where, "models": registry.list_models()}
    if command == "show":
        return {**where, **registry.show(args.name)}
    raise RegistryError(f"unknown registry command {command!r}")


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RegistryError(f"--tag {pair!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def _fail(message: str) -> int:
    print("sigserve: " + " ".join(message.split()), file=sys.stderr)
    return 2
