"""``hearth --add-endpoint NAME=URL [--api-key-env VAR]`` and ``hearth --remove-endpoint NAME``.

Connections managed from a script or a provisioning step, without opening the window. The
key is read from an environment variable rather than the command line, so it never shows
in ``ps`` or the shell's history; like every secret it goes to the keyring.
"""

from __future__ import annotations

import argparse
import os
import sys

from app.core import secrets
from app.core.connections import ConnectionError_, ConnectionStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--add-endpoint",
        metavar="NAME=URL",
        help="add or update a connection to an OpenAI-compatible server (llama.cpp, vLLM, Ollama…) and exit",
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="with --add-endpoint: read the endpoint's API key from this variable"
    )
    parser.add_argument("--remove-endpoint", metavar="NAME", help="remove a connection (and its key) and exit")


def handle(args: argparse.Namespace) -> int | None:
    """The exit code when the arguments asked for a connection change, else None."""
    if args.add_endpoint is None and args.remove_endpoint is None:
        if args.api_key_env is not None:
            print("hearth: --api-key-env goes with --add-endpoint NAME=URL", file=sys.stderr)
            return 2
        return None
    store = ConnectionStore()
    if args.remove_endpoint is not None:
        if store.remove(args.remove_endpoint):
            print(f"Removed the connection “{args.remove_endpoint.strip()}”.")
            return 0
        print(f"hearth: there is no connection named “{args.remove_endpoint.strip()}”.", file=sys.stderr)
        return 1
    name, sep, url = str(args.add_endpoint).partition("=")
    if not sep:
        print(
            "hearth: --add-endpoint takes NAME=URL, e.g. --add-endpoint gpu-box=http://10.0.0.5:8000", file=sys.stderr
        )
        return 2
    key: str | None = None
    if args.api_key_env is not None:
        key = os.environ.get(args.api_key_env)
        if not key:
            print(f"hearth: the environment variable {args.api_key_env} is not set or empty.", file=sys.stderr)
            return 2
    try:
        connection = store.add_or_update(name, url, key, keep_key=key is None)
    except ConnectionError_ as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return 2
    except secrets.TokenStorageUnavailable:
        print(
            "hearth: the connection is saved, but no system keyring could keep its API key; "
            "add the key in Models > Connections when Hearth runs.",
            file=sys.stderr,
        )
        return 1
    note = " with its API key (in the system keyring)" if key else ""
    print(f"Saved the connection “{connection.name}” → {connection.base_url}{note}.")
    return 0
