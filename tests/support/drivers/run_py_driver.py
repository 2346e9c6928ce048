# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Runs one of tests/support/drivers/*.py unchanged against a server that is not on 127.0.0.1.

usage: run_py_driver.py HOST SCRIPT ARGS...
The lab scripts connect to 127.0.0.1; in the end-to-end tests the client runs in
its own network namespace, so the server's address is substituted here before
the script runs (pymssql.connect(server=...), pyodbc's SERVER= keyword).
"""
import runpy
import sys

host, script = sys.argv[1], sys.argv[2]
sys.argv = [script] + sys.argv[3:]

try:
    import pymssql

    _connect = pymssql.connect

    def connect(*args, **kwargs):
        if kwargs.get("server") == "127.0.0.1":
            kwargs["server"] = host
        return _connect(*args, **kwargs)

    pymssql.connect = connect
except ImportError:
    pass

try:
    import pyodbc

    _odbc_connect = pyodbc.connect

    def odbc_connect(cs, *args, **kwargs):
        return _odbc_connect(cs.replace("SERVER=127.0.0.1;", "SERVER=" + host + ";"), *args, **kwargs)

    pyodbc.connect = odbc_connect
except ImportError:
    pass

runpy.run_path(script, run_name="__main__")
