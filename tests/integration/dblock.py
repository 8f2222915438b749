#!/usr/bin/python3
"""dblock.py DB LOCKED RELEASE [SECONDS] - holds an exclusive lock on a
SQLite file for the tests that make storage fail: BEGIN EXCLUSIVE on DB,
then creates the file LOCKED, waits until the file RELEASE appears (at most
SECONDS, default 60), rolls back and exits.  Start it with lib.sh's py_bg.
"""
import os
import sqlite3
import sys
import time

db_path, locked, release = sys.argv[1:4]
limit = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
db = sqlite3.connect(db_path, timeout=20, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
open(locked, "w").close()
deadline = time.monotonic() + limit
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.02)
db.execute("ROLLBACK")
db.close()
print("# lock on %s released" % db_path)
