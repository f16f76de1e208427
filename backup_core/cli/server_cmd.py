"""``python -m backup_core server``: run the embedded MongoDB-compatible server.

Runs in the foreground on 127.0.0.1 until SIGTERM/SIGINT (with
``--auto-stop``, the way the dashboard and the CLI start it for themselves,
also once no process has used it for a few seconds). Once it answers,
one line goes to stdout: the URI, or with ``--json`` one JSON document
``{"uri", "port", "pid", "data_dir", "memory"}``; callers (tests,
``ensure_server``) read that line from the pipe while the server keeps running.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings
from ..embedded import serve
from .common import number_type


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "server",
        help="run the embedded MongoDB-compatible server in the foreground",
        description="Run the embedded MongoDB-compatible server (mongoeco) on 127.0.0.1 "
                    "and print its URI. Stops on SIGTERM or Ctrl-C.",
    )
    p.add_argument("--port", type=number_type("--port", 0, 65535, integer=True), default=0,
                   help="TCP port (default 0: any free port)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="data dir (env EMBEDDED_DATA_DIR; default ./.data)")
    p.add_argument("--memory", action="store_true",
                   help="keep data in memory only: no persistence, full BSON fidelity (for tests)")
    p.add_argument("--no-seed", action="store_true", help="do not write demo data on first start")
    p.add_argument("--auto-stop", action="store_true",
                   help="stop once no dashboard or CLI process has used it for a few seconds "
                        "(how they start it for themselves; a server started by hand runs until stopped)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, settings: Settings) -> None:
    data_dir = None if args.memory else settings.data_dir.absolute()
    want_json = bool(getattr(args, "json", False))

    def on_ready(uri: str) -> None:
        if want_json:
            line = json.dumps({
                "uri": uri,
                "port": urlsplit(uri).port,
                "pid": os.getpid(),
                "data_dir": str(data_dir) if data_dir else None,
                "memory": bool(args.memory),
            })
        else:
            line = uri
        print(line, flush=True)

    serve(data_dir, port=args.port, memory=args.memory,
          seed_db=None if args.no_seed else settings.db_name,
          on_ready=on_ready, stop_event=None, auto_stop=args.auto_stop)
    return None  # the ready line was this command's output
