#!/usr/bin/env python3
"""Writes a benchmark's block into docs/benchmarks.md between <!-- NAME:begin --> and
<!-- NAME:end --> (appended when the markers are missing), atomically.

Usage: bench/docs_block.py NAME < body
The body may use {date} (today) and {machine} (the CPU model and the number of CPUs).
"""
import datetime
import os
import platform
import re
import sys

name = sys.argv[1]
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.md")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.machine())
body = sys.stdin.read().rstrip("\n").replace("{date}", str(datetime.date.today())).replace(
    "{machine}", f"{cpu} ({os.cpu_count()} CPUs)")
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = begin + "\n" + body + "\n" + end
text = open(path).read()
if begin in text:
    text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda m: block, text, flags=re.S)
else:
    text += "\n" + block + "\n"
open(path + ".tmp", "w").write(text)
os.replace(path + ".tmp", path)
print(f"wrote the {name} table into docs/benchmarks.md", file=sys.stderr)
