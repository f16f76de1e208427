"""``keygen --out FILE``: a new random encryption key in a file of its own (mode 0600).

With ``BACKUP_KEY_FILE=FILE`` every new backup is encrypted with it. Keep a
copy somewhere safe: losing the key loses every backup encrypted with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store.crypto import CIPHER, generate_key_file


@dataclass
class KeygenResult:
    path: str
    fingerprint: str

    def to_json(self) -> dict:
        return {"path": self.path, "fingerprint": self.fingerprint, "cipher": CIPHER}

    def to_text(self) -> str:
        return (f"new key {self.fingerprint} written to {self.path} (mode 0600)\n"
                f"use it with BACKUP_KEY_FILE={self.path}; keep a copy somewhere safe: "
                "without it, backups encrypted with it cannot be read")


def register(sub):
    p = sub.add_parser("keygen", help="write a new encryption key file",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", required=True, metavar="FILE", help="the key file to create (never overwritten)")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    key = generate_key_file(args.out)
    return KeygenResult(str(args.out), key.fingerprint)
