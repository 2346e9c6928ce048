# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""pymssql (FreeTDS db-lib) against the lab server.

usage: pymssql_query.py PORT USER QUERY
Prints one line per row ("ROW v1|v2"), then "DONE <rows>", or "ERROR <number> <text>".
"""
import sys

try:
    import pymssql
except ImportError as e:  # the test turns this into a skip (or a failure under TDSBPF_REQUIRE_BPF=1)
    print("MISSING pymssql:", e)
    sys.exit(77)

port, user, query = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    conn = pymssql.connect(server="127.0.0.1", port=port, user=user, password="lab",
                           login_timeout=5, timeout=5)
    cur = conn.cursor()
    cur.execute(query)
    rows = cur.fetchall()
    for r in rows:
        print("ROW " + "|".join(str(v) for v in r))
    print("DONE", len(rows))
    conn.close()
except pymssql.Error as e:
    # pymssql puts (number, message) in args[0] for server errors.
    first = e.args[0] if e.args else None
    number = first[0] if isinstance(first, tuple) and first else (first if isinstance(first, int) else 0)
    print("ERROR", number, e)
    sys.exit(1)
