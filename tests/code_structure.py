#!/usr/bin/env python3
"""Checks of the code's structure, run by CTest (tests/CMakeLists.txt).

layers: every #include "zflow/<other>/..." in include/zflow/<module>/ and src/<module>/
  names <module> itself or one of the modules it may use. The table comes from the
  top-level CMakeLists.txt (ZFLOW_DEPS_<module>), as arguments module=dep,dep,...
  The table itself must be a layering (no cycle), and every folder of include/zflow/ and
  src/ must be a module of it.

function-length: no function in the given folders is longer than --max-lines lines. A
  function starts at a line in column 0 that holds '(' and whose signature ends with '{'
  within a few lines; it ends at the next line that starts with '}'.

Both print one line per finding, file:line first, and exit 1 when there is any.
"""

import argparse
import re
import sys
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]zflow/([A-Za-z0-9_]+)/')
SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".inc"}
# How many lines after the one with '(' the signature may take before its '{'.
SIGNATURE_LINES = 6


def parse_table(entries):
    table = {}
    for entry in entries:
        module, sep, deps = entry.partition("=")
        if not sep or not module:
            raise SystemExit(f"layers: bad table entry '{entry}' (want module=dep,dep)")
        table[module] = [d for d in deps.split(",") if d]
    for module, deps in table.items():
        for dep in deps:
            if dep not in table:
                raise SystemExit(f"layers: {module} depends on unknown module '{dep}'")
    return table


def find_cycle(table):
    """A cycle of the dependency table as a list of modules, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for dep in table[module]:
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep, path + [dep])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in table:
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def source_files(folder):
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)


def check_layers(root, table):
    findings = []
    cycle = find_cycle(table)
    if cycle:
        findings.append("CMakeLists.txt: the module table has a cycle: " + " -> ".join(cycle))
    for base in (root / "include" / "zflow", root / "src"):
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if folder.name not in table:
                findings.append(f"{folder.relative_to(root)}: not a module of the table in "
                                "CMakeLists.txt (ZFLOW_MODULES, ZFLOW_DEPS_<module>)")
    for module, deps in table.items():
        allowed = {module, *deps}
        for folder in (root / "include" / "zflow" / module, root / "src" / module):
            for path in source_files(folder):
                text = path.read_text(encoding="utf-8", errors="replace")
                for number, line in enumerate(text.splitlines(), 1):
                    match = INCLUDE.match(line)
                    if match and match.group(1) not in allowed:
                        may = ", ".join(deps) if deps else "no other module"
                        findings.append(
                            f"{path.relative_to(root)}:{number}: module {module} includes "
                            f"zflow/{match.group(1)}/ but may include only {may} "
                            "(ZFLOW_DEPS_" + module + " in CMakeLists.txt)")
    return findings


def starts_function(lines, i):
    """The index of the line holding the opening '{' of a function starting at line i."""
    line = lines[i]
    if not line or line[0].isspace() or line[0] in "#/}*" or "(" not in line:
        return None
    for j in range(i, min(i + SIGNATURE_LINES, len(lines))):
        code = lines[j].split("//")[0].rstrip()
        if code.endswith("{"):
            return j
        if code.endswith(";") or (j > i and lines[j].startswith("}")):
            return None
    return None


def function_lengths(path):
    """(first line, length, signature) of every function of the file, lines from 1."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    functions = []
    i = 0
    while i < len(lines):
        brace = starts_function(lines, i)
        if brace is None:
            i += 1
            continue
        end = brace
        if not lines[brace].startswith("}"):
            end = brace + 1
            while end < len(lines) and not lines[end].startswith("}"):
                end += 1
        if end >= len(lines):
            end = len(lines) - 1
        functions.append((i + 1, end - i + 1, lines[i].strip()))
        i = end + 1
    return functions


def check_function_length(root, folders, max_lines):
    findings = []
    for folder in folders:
        for path in source_files(root / folder):
            for first, length, signature in function_lengths(path):
                if length > max_lines:
                    findings.append(f"{path.relative_to(root)}:{first}: {length} lines "
                                    f"(at most {max_lines}): {signature}")
    return findings


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="check", required=True)
    layers = sub.add_parser("layers", help="includes between modules follow the table")
    layers.add_argument("--root", type=Path, required=True)
    layers.add_argument("table", nargs="+", help="module=dep,dep,... for every module")
    length = sub.add_parser("function-length", help="no function longer than --max-lines")
    length.add_argument("--root", type=Path, required=True)
    length.add_argument("--max-lines", type=int, default=80)
    length.add_argument("folders", nargs="+", help="folders under --root")
    args = parser.parse_args()

    if args.check == "layers":
        findings = check_layers(args.root, parse_table(args.table))
        what = "layering fault(s)"
    else:
        findings = check_function_length(args.root, args.folders, args.max_lines)
        what = f"function(s) longer than {args.max_lines} lines"
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} {what}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
