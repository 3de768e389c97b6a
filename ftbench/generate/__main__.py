"""`python -m ftbench.generate [--out DIR] [--task NAME ...] [--check]`: (re)generate the mini task data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftbench.generate import DEFAULT_OUT, GENERATORS, compare, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftbench.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--task", action="append", choices=sorted(GENERATORS), help="only this task (repeatable)")
    parser.add_argument("--check", action="store_true", help="compare with the files on disk; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = compare(args.out, args.task)
        for problem in problems:
            print(problem, file=sys.stderr)
        print("mini task data is up to date" if not problems else f"{len(problems)} file(s) out of date")
        return 1 if problems else 0
    for path in write(args.out, args.task):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
