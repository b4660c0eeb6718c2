#!/usr/bin/env python3
"""Fails when a Rust file of the repository is over 600 lines or a function
in one (tests included) is over 80.

Usage: python3 scripts/size_limits.py

Functions are found by their `fn` line and measured to their closing brace
(strings, characters and line comments are skipped when counting braces).
"""

import re
import subprocess
import sys

MAX_FILE = 600
MAX_FN = 80
FN = re.compile(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")


def code(line: str) -> str:
    """`line` without strings, character literals and its comment."""
    line = re.sub(r'"([^"\\]|\\.)*"', '""', line)
    line = re.sub(r"'(\\.|[^\\'])'", "''", line)
    return line.split("//")[0]


def length(lines: list[str], start: int) -> int | None:
    """How many lines the function starting at `start` spans; `None` for a
    declaration without a body."""
    depth, opened = 0, False
    for at in range(start, len(lines)):
        text = code(lines[at])
        if not opened and ";" in text and "{" not in text:
            return None
        for char in text:
            if char == "{":
                depth, opened = depth + 1, True
            elif char == "}":
                depth -= 1
        if opened and depth <= 0:
            return at - start + 1
    return None


def main() -> int:
    listed = subprocess.run(["git", "ls-files", "*.rs"], capture_output=True, text=True, check=True)
    problems = []
    for path in listed.stdout.split():
        lines = open(path, encoding="utf-8").read().split("\n")
        if len(lines) > MAX_FILE:
            problems.append(f"{path}: {len(lines)} lines (at most {MAX_FILE})")
        for at, line in enumerate(lines):
            found = FN.match(line)
            if not found or line.strip().startswith("//"):
                continue
            span = length(lines, at)
            if span is not None and span > MAX_FN:
                problems.append(f"{path}:{at + 1}: fn {found.group(6)} is {span} lines (at most {MAX_FN})")
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"every Rust file is at most {MAX_FILE} lines and every function at most {MAX_FN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
