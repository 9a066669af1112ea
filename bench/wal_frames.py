#!/usr/bin/env python3
"""Which tables and indexes the SQLite writer's WAL frames went to.

Reads an strace log of the writer thread's pwrite64 calls made with
`-x -s 8` (each WAL frame is written as a 24-byte header, whose first four
bytes are the page number, then the page) and maps each page number to its
b-tree with SQLite's `dbstat` table on the database afterwards. Pages freed
and reused in between are attributed to their final owner, so the split is
approximate; the totals are exact.

    W=<writer thread id>   # the last-started of the router's hookyard-sqlite threads
    timeout 3 strace -p "$W" -e trace=pwrite64 -x -s 8 -o writer.strace
    python3 bench/wal_frames.py path/to/hookyard.db writer.strace

strace slows the writer a lot (bigger transactions than without it), so
compare splits between builds, not absolute frame counts.
"""

import collections
import re
import sqlite3
import sys

FRAME_HEADER = re.compile(r'pwrite64\(\d+, "((?:\\x[0-9a-f]{2})+)"\.*, 24, \d+\)')


def frames(strace_log):
    """(page number, commit flag) of every WAL frame header written."""
    for line in open(strace_log, encoding="utf-8", errors="replace"):
        match = FRAME_HEADER.match(line)
        if not match:
            continue
        raw = bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", match.group(1)))
        # Header: page number, then the database size after a commit (0 otherwise).
        yield int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big") != 0


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} DATABASE STRACE_LOG")
    database, log = sys.argv[1:]
    written = list(frames(log))
    if not written:
        sys.exit(f"no WAL frame headers in {log} (was strace run with -x -s 8?)")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        owner = {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}
    commits = sum(1 for _, commit in written if commit)
    print(f"{len(written)} frames, {commits} commits, {len(written) / max(commits, 1):.1f} frames per commit")
    for name, count in collections.Counter(owner.get(p, "(freed)") for p, _ in written).most_common():
        print(f"{count:8} {count / len(written):6.1%}  {name}")


if __name__ == "__main__":
    main()
