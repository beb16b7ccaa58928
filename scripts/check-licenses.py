#!/usr/bin/env python3
"""Fails when a dependency's licence is not compatible with shipping FerroLB under Apache-2.0.

Reads `cargo metadata` (every package in the lock file, all targets and platforms) and evaluates
each SPDX expression against the allow-list: an OR needs one allowed side, an AND needs both.
"""
import json
import re
import subprocess
import sys

ALLOWED = {
    "Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Zlib", "0BSD", "BSL-1.0",
    "CC0-1.0", "Unlicense", "Unicode-3.0", "Unicode-DFS-2016", "MPL-2.0", "CDLA-Permissive-2.0",
}


def allowed(expression: str) -> bool:
    """Evaluates an SPDX expression; `X WITH exception` counts as X (exceptions only add rights)."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression.replace("/", " OR "))
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    def term():
        if peek() == "(":
            take()
            value = disjunction()
            if take() != ")":
                raise ValueError(expression)
            return value
        name = take().rstrip("+")
        if peek() == "WITH":
            take()
            take()
        return name in ALLOWED

    def conjunction():
        value = term()
        while peek() == "AND":
            take()
            value = term() and value
        return value

    def disjunction():
        value = conjunction()
        while peek() == "OR":
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if position != len(tokens):
        raise ValueError(expression)
    return result


def main() -> int:
    metadata = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
    members = set(metadata["workspace_members"])
    problems = []
    count = 0
    for package in metadata["packages"]:
        count += 1
        name = f'{package["name"]} {package["version"]}'
        licence = package.get("license")
        if package["id"] in members:
            if licence != "Apache-2.0":
                problems.append(f"{name}: workspace crates must be Apache-2.0, found {licence!r}")
            continue
        if not licence:
            problems.append(f"{name}: no SPDX licence expression (licence file: {package.get('license_file')})")
            continue
        try:
            if not allowed(licence):
                problems.append(f"{name}: licence {licence!r} is not on the allow-list")
        except (ValueError, IndexError):
            problems.append(f"{name}: unreadable licence expression {licence!r}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"check-licenses: {count} packages, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
