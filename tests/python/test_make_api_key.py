"""tools/make_api_key.py: key shape, hash, the keys-file line, --append.

The server side of the same round trip (the line parsed by the server's keys
file parser, the key accepted) is tests/server/auth_test.cc.
"""
import hashlib
import os
import re
import stat
import subprocess
import sys

import make_api_key

TOOL = os.path.join(os.path.dirname(make_api_key.__file__), "make_api_key.py")
LINE_RE = re.compile(r"- \{name: ([A-Za-z0-9_.-]+), role: (admin|write|read), "
                     r"(?:collections: \[([^\]]*)\], )?sha256: ([0-9a-f]{64})\}")


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], check=True, capture_output=True,
                          text=True).stdout


def test_prints_key_once_and_its_hashed_entry():
    out = [line for line in run("--role", "read", "--collections", "shoes,bags",
                                "--name", "web-shop").splitlines() if not line.startswith("#")]
    assert len(out) == 2
    key, line = out
    assert re.fullmatch(r"lk_[0-9a-f]{64}", key)
    m = LINE_RE.fullmatch(line)
    assert m, line
    assert m.group(1) == "web-shop" and m.group(2) == "read"
    assert m.group(3) == "shoes, bags"
    assert m.group(4) == hashlib.sha256(key.encode()).hexdigest()
    assert key not in line


def test_keys_are_fresh_and_default_name_is_role_and_hash_prefix():
    keys = {make_api_key.new_key() for _ in range(100)}
    assert len(keys) == 100
    key = make_api_key.new_key()
    line = make_api_key.entry_line(key, "admin")
    assert line == ("- {name: admin-" + make_api_key.key_hash(key)[:8] + ", role: admin, sha256: "
                    + make_api_key.key_hash(key) + "}")


def test_append_writes_a_private_file_and_prints_only_the_key(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("- {name: old, role: read, sha256: " + "0" * 64 + "}")  # no final newline
    key = run("--role", "write", "--append", str(path)).strip()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("- {name: old")
    assert LINE_RE.fullmatch(lines[1]).group(4) == hashlib.sha256(key.encode()).hexdigest()
    new = tmp_path / "new.yaml"
    run("--role", "read", "--append", str(new))
    assert stat.S_IMODE(new.stat().st_mode) == 0o600


def test_rejects_bad_names():
    for args in (["--role", "owner"], ["--role", "read", "--collections", "a b"],
                 ["--role", "read", "--name", "x: y"]):
        r = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)
        assert r.returncode == 2, args
