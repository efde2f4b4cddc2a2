"""Summarise a py-spy ``--format raw --threads`` recording: per thread, top functions by self and total.

    python benchmarks/spy_summary.py RECORDING.txt [--top 15]

Why next to cProfile (``run.py --profile``): cProfile instruments every call, which
inflates the cost of the many small calls on the caller's hot path; a sampling
profiler does not. And with ``py-spy record --gil`` only samples holding the GIL
count, so the figures say where the CPU goes on each thread, while a recording
without it also shows where the threads wait (for the GIL, the socket, a lock).
See benchmarks/README.md for the recording command. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from typing import Optional

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str, with_line: bool) -> str:
    """``Worker.put (/x/mparticle_analytics/worker.py:117)`` as ``Worker.put (worker.py:117)``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    where = match["file"].rsplit("/", 1)[-1]
    if with_line and match["line"]:
        where += f":{match['line']}"
    return f"{match['function']} ({where})"


def summarise(lines: list[str]) -> dict[str, tuple[int, Counter[str], Counter[str]]]:
    """Per thread: total samples, samples by leaf frame (with its line), samples by function on the stack."""
    threads: dict[str, tuple[int, Counter[str], Counter[str]]] = {}
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ") or frames[0].startswith("process "):
            thread = frames.pop(0).split(": ", 1)[-1]
        total, leaf, inclusive = threads.get(thread, (0, Counter(), Counter()))
        if frames:
            leaf[_short(frames[-1], with_line=True)] += count
            for name in {_short(frame, with_line=False) for frame in frames}:
                inclusive[name] += count
        threads[thread] = (total + count, leaf, inclusive)
    return threads


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("recording", help="py-spy record --threads --format raw output")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with open(args.recording, encoding="utf-8") as file:
        threads = summarise(file.readlines())
    for thread, (total, leaf, inclusive) in sorted(threads.items(), key=lambda item: -item[1][0]):
        print(f"\n## thread {thread}: {total} samples")
        for title, counter in (("self (leaf frame and line)", leaf), ("total (on the stack)", inclusive)):
            print(f"  {title}:")
            for name, count in counter.most_common(args.top):
                print(f"    {100 * count / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
