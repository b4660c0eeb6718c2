#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

Usage: python3 scripts/import_circles.py CRATE_SRC [CRATE_SRC ...]

For each crate, every `crate::…` and `super::…` path outside `#[cfg(test)]`
code is an arrow from the module that writes it to the module it names, at
two levels: between the crate's top-level modules, and between the modules
one level inside each of them. Any circle at either level is printed, with
one file that draws each arrow, and the script exits 1.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)::\{([^}]*)\}")


def module_of(src: Path, file: Path) -> list[str]:
    """The module path of `file` (`a/b.rs` and `a/b/mod.rs` are `a::b`)."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def without_tests(text: str) -> str:
    """`text` with every `#[cfg(test)]` item (a module or a function) cut."""
    out, at = [], 0
    for found in re.finditer(r"#\[cfg\(test\)\]", text):
        if found.start() < at:
            continue
        out.append(text[at : found.start()])
        brace = text.find("{", found.end())
        semi = text.find(";", found.end())
        if brace == -1 or (semi != -1 and semi < brace):
            at = semi + 1
            continue
        depth, i = 0, brace
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        at = i + 1
    out.append(text[at:])
    return "".join(out)


def without_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def targets(module: list[str], text: str):
    """Every module path `text` names through `crate::` or `super::`."""
    here = module
    for root, rest in GROUP.findall(text):
        for item in rest.split(","):
            item = item.strip()
            if item and item != "self":
                yield resolve(root, here, item.split("::"))
    for root, rest in PATH.findall(text):
        yield resolve(root, here, rest.strip(":").split("::"))


def resolve(root: str, here: list[str], rest: list[str]) -> list[str]:
    if root == "crate":
        return rest
    base = list(here[:-1])
    while rest and rest[0] == "super":
        rest, base = rest[1:], base[:-1]
    return base + rest


def circles(edges: dict) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def check(src: Path) -> list[str]:
    files = sorted(src.rglob("*.rs"))
    modules = {tuple(module_of(src, f)) for f in files}
    levels = [dict(), dict()]  # level -> {from: {to: file}}
    for file in files:
        module = module_of(src, file)
        text = without_comments(without_tests(file.read_text()))
        for target in targets(module, text):
            # The longest prefix of the target that is a module.
            while target and tuple(target) not in modules:
                target = target[:-1]
            if not target or not module:
                continue
            if target[0] != module[0]:
                arrows = levels[0].setdefault(module[0], {})
                arrows.setdefault(target[0], file)
            elif len(module) > 1 and len(target) > 1 and module[1] != target[1]:
                top = module[0]
                arrows = levels[1].setdefault(f"{top}::{module[1]}", {})
                arrows.setdefault(f"{top}::{target[1]}", file)
    problems = []
    for edges in levels:
        for group in circles(edges):
            lines = [f"{src}: circle {' <-> '.join(group)}"]
            for a in group:
                for b, file in edges.get(a, {}).items():
                    if b in group:
                        lines.append(f"  {a} -> {b} ({file.relative_to(src)})")
            problems.append("\n".join(lines))
    return problems


def main() -> int:
    problems = [p for src in sys.argv[1:] for p in check(Path(src))]
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"no import circles in {', '.join(sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
