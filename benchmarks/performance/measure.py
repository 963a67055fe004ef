"""Run a command and measure what it costs: wall time, CPU time and peak memory of its whole
process tree (Linux ``/proc``; no third-party dependency, so any environment can be measured).

Peak memory is the largest sum over the tree of each process's proportional set size (PSS:
pages shared between processes, e.g. forked data-loader workers, are split between them rather
than counted once per process), sampled every ``interval`` seconds. CPU time is the user + system
time of the reaped children (``RUSAGE_CHILDREN``), which includes every descendant waited for.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import threading
import time
from pathlib import Path

RESULT_TAG = "RESULT "
"""A measured command prints one line ``RESULT {json}`` with its own figures."""


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
                 interval: float = 0.25, timeout: float | None = None, log_path: Path | None = None) -> dict:
    """Run ``cmd``; return wall/CPU seconds, peak tree PSS (MB), return code and its RESULT json."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out_fh = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=out_fh, text=True)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], sum(_pss_kb(p) for p in _tree(proc.pid)))
            stop.wait(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if log_path:
        out_fh.close()
    result = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_pss_mb": peak[0] / 1024,
        "result": result,
    }


def emit(result: dict) -> None:
    """Print a command's own figures for :func:`run_measured`."""
    print(RESULT_TAG + json.dumps(result), flush=True)
