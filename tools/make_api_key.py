#!/usr/bin/env python3
"""Makes a Lookalike API key and the hashed entry for the server's keys file.

    tools/make_api_key.py --role read --collections shoes,bags --name web-shop
    tools/make_api_key.py --role admin --name ops --append /etc/lookalike/keys.yaml

Prints the key once (it is stored nowhere: hand it to the client, e.g. as
LOOKALIKE_API_KEY) and the line for the keys file (server flag --api-keys,
config api_keys), which holds only the key's SHA-256:

    - {name: web-shop, role: read, collections: [shoes, bags], sha256: 3b1f...}

With --append FILE the line is appended to FILE (created with mode 0600) and
only the key is printed. Keys are "lk_" + 64 hex digits (256 random bits from
the `secrets` module), so one SHA-256 is enough at rest (docs/security.md).
Standard library only.
"""

import argparse
import hashlib
import os
import re
import secrets
import sys

ROLES = ("admin", "write", "read")
# Names appear unquoted in the YAML line: keep them to characters that need no quoting.
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
COLLECTION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as CreateCollectionRequest.name


def new_key():
    """A fresh key: "lk_" + 32 random bytes in hex."""
    return "lk_" + secrets.token_hex(32)


def key_hash(key):
    """SHA-256 of the key's UTF-8 bytes, as the server computes it (lowercase hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def entry_line(key, role, collections=(), name=None):
    """The keys-file line for `key`: a one-line YAML list item."""
    digest = key_hash(key)
    name = name or f"{role}-{digest[:8]}"
    fields = [f"name: {name}", f"role: {role}"]
    if collections:
        fields.append("collections: [" + ", ".join(collections) + "]")
    fields.append(f"sha256: {digest}")
    return "- {" + ", ".join(fields) + "}"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", required=True, choices=ROLES,
                        help="admin: create/drop collections and all below; write: upsert/delete "
                             "and read; read: search/get/embed/list/describe")
    parser.add_argument("--collections", default="",
                        help="comma-separated collections the key is limited to (default: all)")
    parser.add_argument("--name", help="label in the server's logs (default: ROLE-<hash prefix>)")
    parser.add_argument("--append", metavar="FILE",
                        help="append the entry to this keys file and print only the key")
    args = parser.parse_args(argv)
    if args.name is not None and not NAME_RE.fullmatch(args.name):
        parser.error(f"--name {args.name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    args.collection_list = [c.strip() for c in args.collections.split(",") if c.strip()]
    for c in args.collection_list:
        if not COLLECTION_RE.fullmatch(c):
            parser.error(f"--collections: {c!r} is not a collection name ([A-Za-z0-9_-]{{1,64}})")
    return args


def main(argv=None):
    args = parse_args(argv)
    key = new_key()
    line = entry_line(key, args.role, args.collection_list, args.name)
    if args.append:
        fd = os.open(args.append, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            if f.tell() > 0:
                with open(args.append, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        f.write("\n")
            f.write(line + "\n")
        print(key)
        print(f"appended to {args.append}: {line}", file=sys.stderr)
        return 0
    print("# API key (shown once; give it to the client, e.g. as LOOKALIKE_API_KEY):")
    print(key)
    print("# entry for the server's keys file (--api-keys / api_keys):")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
