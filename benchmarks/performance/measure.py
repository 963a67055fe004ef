"""Run a command and measure what it costs: wall time, CPU time and peak memory of its whole
process tree (Linux ``/proc``; no third-party dependency, so any environment can be measured).

Peak memory is sampled every ``interval`` seconds as the largest sum over the tree of each
process's resident set size (RSS: what a job scheduler sees) and of its proportional set size
(PSS: pages shared with other processes are split between them). PSS is smaller than RSS when
another process maps the same files, e.g. a second environment whose packages are hard links of
the same files (uv's cache) running at the same time, so RSS is the figure compared. CPU time is the user + system
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


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, pss


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
                 interval: float = 0.25, timeout: float | None = None, log_path: Path | None = None) -> dict:
    """Run ``cmd``; return wall/CPU seconds, peak tree RSS and PSS (MB), return code and its RESULT json."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out_fh = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=out_fh, text=True)
    peak = [0, 0]  # RSS, PSS (kB)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            sizes = [_rss_pss_kb(p) for p in _tree(proc.pid)]
            peak[0] = max(peak[0], sum(r for r, _ in sizes))
            peak[1] = max(peak[1], sum(q for _, q in sizes))
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
        "peak_rss_mb": peak[0] / 1024,
        "peak_pss_mb": peak[1] / 1024,
        "result": result,
    }


def emit(result: dict) -> None:
    """Print a command's own figures for :func:`run_measured`."""
    print(RESULT_TAG + json.dumps(result), flush=True)
