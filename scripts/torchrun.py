#!/usr/bin/env python3
"""torchrun, as Debian 12's python3-torch (1.13) ships it, with one fix for Python 3.11.

Debian 12's torchrun stops before starting any worker with
"AttributeError: 'NoneType' object has no attribute 'get'": its Std.from_str looks the
values 0 (NONE) and 3 (ALL) up by iterating the IntFlag Std, and since Python 3.11 that
iteration yields only the single-bit members. This wrapper replaces from_str by a direct
conversion and then runs torchrun itself, unchanged:

    python3 scripts/torchrun.py --no_python --nproc_per_node 2 zflow train ...

(docs/distributed.md). With a newer PyTorch, call torchrun directly.
"""
import re
import sys

from torch.distributed.elastic.multiprocessing import api


def _from_str(cls, value):
    if re.match(api._VALUE_REGEX, value):
        return cls(int(value))
    if re.match(api._MAPPING_REGEX, value):
        return {int(i): cls(int(v)) for i, v in (m.split(":") for m in value.split(","))}
    raise ValueError(f"{value} does not match <{api._VALUE_REGEX}> or <{api._MAPPING_REGEX}>")


api.Std.from_str = classmethod(_from_str)

from torch.distributed.run import main  # noqa: E402  (after the fix)

if __name__ == "__main__":
    sys.exit(main())
