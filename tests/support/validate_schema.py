#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Validate NDJSON records against the connection JSON Schema.

usage: validate_schema.py SCHEMA RECORDS.ndjson
Exit 0: all valid; 1: a record is invalid; 2: usage or schema problem;
3: the jsonschema module is missing (Debian package python3-jsonschema).
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is not installed (apt-get install python3-jsonschema)", file=sys.stderr)
    sys.exit(3)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        print(f"schema: {e.message}", file=sys.stderr)
        return 2
    validator = cls(schema)
    bad = 0
    count = 0
    with open(sys.argv[2], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            record = json.loads(line)
            for err in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
                path = "/".join(str(p) for p in err.path)
                print(f"record {n}: /{path}: {err.message}", file=sys.stderr)
                bad += 1
    print(f"{count} records, {bad} errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
