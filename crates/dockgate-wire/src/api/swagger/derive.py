#!/usr/bin/env python3
"""Derives operations.tsv: every (method, path template, operationId) of the
Engine API swagger files the route table is checked against.

The tests read the committed table, never the swagger files. To regenerate it
from a directory holding moby's Engine API swagger for API v1.41, named
swagger-v1.41.yaml, and for the latest API (v1.56 when this was written),
named swagger-latest.yaml:

    python3 crates/dockgate-wire/src/api/swagger/derive.py DIR \
        > crates/dockgate-wire/src/api/swagger/operations.tsv

Python 3 standard library only. The swagger files are read line by line,
relying on their two-space indentation (no YAML parser is needed): a path is
`  /path:` under the top-level `paths:`, a method `    get:` under it, and
each method must have an `      operationId:` before the next one.
"""

import hashlib
import os
import sys

FILES = ("swagger-v1.41.yaml", "swagger-latest.yaml")
METHODS = ("get", "post", "put", "delete", "head", "options", "patch")


def operations(name, text):
    found = []
    in_paths = False
    path = None
    method = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and not line.startswith("#"):
            in_paths = line == "paths:"
            continue
        if not in_paths:
            continue
        if line.startswith("  /") and line.endswith(":"):
            if method is not None:
                sys.exit(f"{name}: operation without operationId before {line.strip()}")
            path = line[2:-1]
        elif line.startswith("    ") and line.endswith(":") and line[4:-1] in METHODS:
            if method is not None:
                sys.exit(f"{name}: operation without operationId before {line.strip()}")
            method = line[4:-1].upper()
        elif line.startswith("      operationId: "):
            if method is None:
                sys.exit(f"{name}: stray {line.strip()}")
            if path is None:
                sys.exit(f"{name}: operation outside a path")
            op_id = line[len("      operationId: "):].strip().strip('"')
            found.append((method, path, op_id))
            method = None
    if method is not None:
        sys.exit(f"{name}: last operation has no operationId")
    return found


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR (holding {' and '.join(FILES)})")
    out = [
        "# Engine API operations: swagger file, method, path template, operationId.",
        "# Derived from moby's Engine API swagger files (API v1.41, and the latest API) by",
        "#   python3 crates/dockgate-wire/src/api/swagger/derive.py DIR > crates/dockgate-wire/src/api/swagger/operations.tsv",
        "# where DIR holds (sha256):",
    ]
    rows = []
    for name in FILES:
        with open(os.path.join(sys.argv[1], name), "rb") as f:
            data = f.read()
        out.append(f"#   {name} {hashlib.sha256(data).hexdigest()}")
        rows += [(name, *op) for op in operations(name, data.decode("utf-8"))]
    out += ["\t".join(row) for row in rows]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
