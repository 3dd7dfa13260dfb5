"""Rebuild and check the corpus of real source clips used to generate training pairs.

Why: the training-pair generator needs real camera/animation footage, but the clips
themselves are not committed. corpus.csv (next to this file) pins every clip to a
public GitHub repository, a commit and a path, plus its sha256, so the corpus can be
re-extracted byte-for-byte from local git mirrors and checked later.

  python tools/trainset/corpus.py build --mirrors DIR --out DIR
  python tools/trainset/corpus.py verify --dir DIR

Mirrors: DIR/<owner>+<name> is either a bare git dir, or holds one (e.g. .../repo or
.../*.git). Output files are named <sha256[:16]><ext of the source path>.
Standard library only.
"""

import argparse
import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

MANIFEST = Path(__file__).with_name("corpus.csv")


def read_manifest(path=MANIFEST):
    """Return the manifest rows (list of dicts keyed by the CSV header)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def clip_name(row):
    """Return the file name a manifest row is stored under: <sha16><ext>."""
    return row["sha256"][:16] + os.path.splitext(row["path"])[1].lower()


def find_git_dir(mirrors, repo):
    """Return the bare git dir for 'owner/name' under mirrors, or None."""
    base = Path(mirrors) / repo.replace("/", "+")
    if (base / "HEAD").is_file() and (base / "objects").is_dir():
        return base
    if base.is_dir():
        for sub in sorted(base.iterdir()):
            if (sub / "HEAD").is_file() and (sub / "objects").is_dir():
                return sub
    return None


def sha256(data):
    """Return the hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def build(mirrors, out):
    """Extract every manifest blob into out; return the number of failures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for row in read_manifest():
        gd = find_git_dir(mirrors, row["repo"])
        if gd is None:
            print(f"missing mirror: {row['repo']}", file=sys.stderr)
            failed += 1
            continue
        p = subprocess.run(
            ["git", "--git-dir", str(gd), "show", f"{row['commit']}:{row['path']}"],
            capture_output=True,
        )
        if p.returncode != 0 or sha256(p.stdout) != row["sha256"]:
            print(f"bad blob: {row['repo']} {row['path']}", file=sys.stderr)
            failed += 1
            continue
        (out / clip_name(row)).write_bytes(p.stdout)
    return failed


def verify(directory):
    """Check every manifest clip is present in directory with the right sha256;
    return the number of problems."""
    bad = 0
    for row in read_manifest():
        f = Path(directory) / clip_name(row)
        if not f.is_file():
            print(f"absent: {f.name} ({row['repo']} {row['path']})", file=sys.stderr)
            bad += 1
        elif sha256(f.read_bytes()) != row["sha256"]:
            print(f"sha mismatch: {f.name}", file=sys.stderr)
            bad += 1
    return bad


def main(argv=None):
    """CLI entry point; return a process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="extract clips from local git mirrors")
    b.add_argument("--mirrors", required=True)
    b.add_argument("--out", required=True)
    v = sub.add_parser("verify", help="check clips on disk against the manifest")
    v.add_argument("--dir", required=True)
    a = ap.parse_args(argv)
    n = build(a.mirrors, a.out) if a.cmd == "build" else verify(a.dir)
    total = len(read_manifest())
    print(f"{a.cmd}: {total - n}/{total} ok")
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
