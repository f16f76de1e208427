"""Command-line front-end: ``python -m backup_core [global flags] COMMAND ...``.

One module per command (``<name>_cmd.py``), each exposing ``register(sub)``
that adds its parser and sets ``handler=run``. A handler takes the parsed
arguments and the ``Settings`` and returns a result (a dataclass with
``to_json()``/``to_text()``, a dict, or None). ``--json`` prints exactly one
JSON document on stdout; errors print one line on stderr and exit non-zero.
Everything printed here has its control characters escaped
(``common.printable``), whatever the database holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from typing import Any, Sequence

from ..config import Settings, debug_enabled, mask_uri
from ..errors import BackupError, UsageError
from .common import json_printable, printable

COMMANDS = (
    "backup", "list", "verify", "compare", "restore", "undo", "cleanup", "archive", "scheduler",
    "status", "audit", "set_password", "unlock", "export", "import", "copy", "keygen", "server", "drill",
)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting with 2."""

    def error(self, message: str) -> None:  # noqa: D401
        raise UsageError(f"{self.prog}: {message}")


def _global_flags(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    p.add_argument("--uri", default=default, help="MongoDB URI (env MONGODB_URI; default: embedded server)")
    p.add_argument("--db", default=default, help="database name (env MONGODB_DB; default equipment_db)")
    p.add_argument("--root", default=default,
                   help="backup root: a folder or s3://bucket/prefix (env BACKUP_ROOT; default ./restore_data_to_db)")
    p.add_argument("--key-file", default=default, metavar="FILE",
                   help="encryption key for new backups, also read (env BACKUP_KEY_FILE)")
    p.add_argument("--allow-plaintext", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="trust backups that are not encrypted although a key is configured (recorded in the "
                        "audit log; env BACKUP_ALLOW_PLAINTEXT=1)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="print exactly one JSON document on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m backup_core", description="MongoDB backup & restore")
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        p = importlib.import_module(f".{name}_cmd", __name__).register(sub)
        # global flags are accepted after the command too: `list --json`
        _global_flags(p, suppress=True)
    return parser


def to_jsonable(result: Any) -> Any:
    if result is None:
        return {}
    if hasattr(result, "to_json"):
        return result.to_json()
    if dataclasses.is_dataclass(result):
        return dataclasses.asdict(result)
    return result


def to_text(result: Any) -> str:
    if hasattr(result, "to_text"):
        return result.to_text()
    return json.dumps(to_jsonable(result), indent=2, default=str, ensure_ascii=False)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.load(uri=args.uri, db=args.db, root=args.root, key_file=getattr(args, "key_file", None),
                         data_dir=getattr(args, "data", None),
                         allow_plaintext=getattr(args, "allow_plaintext", False) or None)


# options whose value may look negative ("-3d"): argparse would take such a value for an option
# and hide the real problem, so "--opt -3d" is passed on as "--opt=-3d" and the value's own check speaks
VALUE_OPTIONS = frozenset({"--older-than", "--retention", "--every", "--set-interval", "--max-root-mb",
                           "--limit", "--lease", "--show", "--max-mb", "--keep-last", "--keep-hourly",
                           "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-within", "--port",
                           "--safety-days", "--pre-write-days", "--archive-days", "--drill-every"})


def _join_negative_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in VALUE_OPTIONS and nxt is not None and len(nxt) > 1 and nxt[0] == "-" \
                and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def entry_point() -> None:
    """The ``backup-core`` console script."""
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    want_json = "--json" in argv
    try:
        return _run(argv, want_json)
    except BrokenPipeError:
        # the reader went away (``... --json | head -c 5``): not an error of ours, and no traceback
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _run(argv: list[str], want_json: bool) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help(sys.stderr)
            raise UsageError("no command given")
        result = args.handler(args, settings_from_args(args))
    except BackupError as err:
        hint = f" ({err.hint})" if err.hint else ""
        first, *more = err.lines()
        print(printable(f"error: {first}{hint}", one_line=True), file=sys.stderr)
        for line in more:  # each detail stays on its own line; newlines inside one are escaped
            print(printable(line, one_line=True), file=sys.stderr)
        if want_json:
            payload = err.payload or {}
            print(json_printable(json.dumps({**payload, "ok": False, "error": str(err), "exit_code": err.exit_code},
                                            default=str, ensure_ascii=False)))
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, and the details on request
        if debug_enabled():
            raise
        first = mask_uri(str(exc)).splitlines()[0] if str(exc) else ""
        print(printable(f"internal error: {type(exc).__name__}: {first} (set BACKUP_DEBUG=1 for a traceback)",
                        one_line=True), file=sys.stderr)
        return 70
    if result is not None:  # None: the handler printed its own output (e.g. server)
        # the one place output is written: text from the database (collection names, values, errors) can
        # never drive the terminal (escape sequences are shown, not run); JSON stays the same value
        if want_json or args.json:
            print(json_printable(json.dumps(to_jsonable(result), default=str, ensure_ascii=False)))
        else:
            print(printable(to_text(result)))
        sys.stdout.flush()  # a closed pipe is seen here, inside main's BrokenPipeError handler
    return 0
