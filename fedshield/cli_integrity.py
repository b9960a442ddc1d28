"""The integrity commands of the ``fedshield`` command line: verify, keys generate, watermark
verify (exit 0 ok, 1 failed check, 2 cannot read)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import FedshieldError


def add_integrity_commands(commands: Any) -> None:
    """``verify``, ``keys generate`` and ``watermark verify`` (``commands``: the subparsers
    action of the parser)."""
    verify = commands.add_parser(
        "verify",
        help="verify a run's signed ledger, checkpoints and head "
        "(exit 0 ok, 1 tampered, 2 cannot read)",
    )
    verify.add_argument("run_dir")
    verify.add_argument(
        "--server-key", default=None, help="the server's public key (PEM) to check signatures with"
    )
    keys = commands.add_parser("keys", help="key tools")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_commands.add_parser(
        "generate", help="write a server key pair and one per client (private keys 0600)"
    )
    generate.add_argument("directory")
    generate.add_argument("--clients", type=int, required=True, help="number of clients")
    watermark = commands.add_parser("watermark", help="watermark tools")
    wm_commands = watermark.add_subparsers(dest="watermark_command", required=True)
    wm_verify = wm_commands.add_parser("verify", help="check a model checkpoint for a watermark")
    wm_verify.add_argument("model", help="checkpoint .npz (e.g. RUN/checkpoints/round_0010.npz)")
    wm_verify.add_argument("key", help="watermark key JSON (e.g. RUN/watermark_key.json)")
    wm_verify.add_argument(
        "--threshold", type=float, default=None, help="accuracy needed on the trigger set"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from common.crypto.signing import key_fingerprint, load_public
    from server.integrity.ledger_verify import Unreadable, run_server_key, verify_run

    try:
        key, where = (
            (load_public(args.server_key), "given by --server-key")
            if args.server_key is not None
            else run_server_key(args.run_dir)
        )
    except Unreadable as err:
        print(f"error: cannot read this input: {err}", file=sys.stderr)
        return 2
    report = verify_run(args.run_dir, key)
    if report.status == "unreadable":
        print(f"error: cannot read this input: {report.reason}", file=sys.stderr)
        return 2
    if not report.ok:
        where_bad = "" if report.first_bad_round is None else f" at round {report.first_bad_round}"
        print(f"FAILED{where_bad}: {report.reason}")
        return 1
    print(
        f"ok: {report.rounds} rounds, head {report.head_hash} (as summary.json records), "
        f"signed by server key {key_fingerprint(key)} ({where})"
    )
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    from common.crypto.keys import generate_keys

    written = generate_keys(args.directory, num_clients=args.clients)
    print(
        f"ok: wrote {len(written) // 2} key pairs to {args.directory} (private keys 0600); "
        "set integrity.keys_dir to it"
    )
    return 0


def _cmd_watermark(args: argparse.Namespace) -> int:
    from server.integrity.watermark import verify_watermark

    for path in (args.model, args.key):
        if not Path(path).is_file():
            raise FedshieldError(f"watermark verify: no file {path!r}")
    kwargs = {} if args.threshold is None else {"threshold": args.threshold}
    ok, accuracy = verify_watermark(args.model, args.key, **kwargs)
    print(f"{'ok' if ok else 'FAILED'}: watermark accuracy {accuracy:.4f}")
    return 0 if ok else 1


INTEGRITY_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "verify": _cmd_verify,
    "keys": _cmd_keys,
    "watermark": _cmd_watermark,
}
