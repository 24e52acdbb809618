#!/usr/bin/env python3
"""Runs commands side by side, alternating, and prints their medians and their ratios to the
first (the baseline): wall time, CPU time (user + system, waited-for children included) and
peak resident memory of the largest process.

    compare.py ROUNDS DIR NAME=COMMAND [NAME=COMMAND ...]

Each COMMAND runs through `bash -c` in DIR with its output discarded; a failing command stops
the comparison.
"""
import os
import statistics
import subprocess
import sys
import time


def measure(command, cwd):
    start = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{command!r} failed (exit {proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main():
    rounds, cwd, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    named = [spec.split("=", 1) for spec in specs]
    results = {name: [] for name, _ in named}
    for _ in range(rounds):
        for name, command in named:
            results[name].append(measure(command, cwd))
    base = None
    for name, _ in named:
        wall, cpu, rss = (statistics.median(r[i] for r in results[name]) for i in range(3))
        line = f"{name:>16}: wall {wall:.3f} s, cpu {cpu:.3f} s, peak {rss:.1f} MiB"
        if base is None:
            base = (wall, cpu)
        else:
            line += f"  ->  {wall / base[0]:.2f}x wall, {cpu / base[1]:.2f}x cpu"
        print(line)


if __name__ == "__main__":
    main()
