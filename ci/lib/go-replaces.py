#!/usr/bin/env python3
"""Print the -replace flags of a module's go.mod (from `go mod edit -json` on stdin), for building
its commands in a throwaway module: `go install` ignores a dependency's replace lines, so they are
copied. Only replaces with a version apply: local path replaces point inside that module's tree."""

import json
import sys

for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if not new.get("Version"):
        continue
    target = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    print(f"-replace={target}={new['Path']}@{new['Version']}")
