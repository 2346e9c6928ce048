# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""FreeTDS ODBC with MARS (MARS_Connection=Yes): two cursors interleaved on one connection.

usage: pyodbc_mars.py PORT DRIVER_PATH
Prints "FIRST <n>", "OTHER <v>", "REST <count>", "PARAMS <row>" and "DONE".
"""
import sys

try:
    import pyodbc
except ImportError as e:
    print("MISSING pyodbc:", e)
    sys.exit(77)

port, driver = sys.argv[1], sys.argv[2]
cs = (f"DRIVER={driver};SERVER=127.0.0.1;PORT={port};UID=sa;PWD=lab;"
      "TDS_Version=7.4;MARS_Connection=Yes")
conn = pyodbc.connect(cs, timeout=5)
big, small = conn.cursor(), conn.cursor()
big.execute("SELECT n FROM rows(3000)")
print("FIRST", big.fetchone()[0])
# The second statement runs while the first result set is still open: MARS.
small.execute("SELECT 42")
print("OTHER", small.fetchone()[0])
print("REST", len(big.fetchall()))
# A parameterised statement: FreeTDS ODBC sends it as RPC sp_prepexec.
small.execute("SELECT ? AS a, ? AS b", 5, "txt")
print("PARAMS", tuple(small.fetchone()))
small.close()
big.close()
conn.close()
print("DONE")
