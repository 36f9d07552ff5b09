"""Run every benchmark in ``bench/`` (each ``bench/*.py`` but this one).

Each runs as ``python bench/<name>.py [extra args]`` from the repository root,
in sorted order, with its output streamed as it comes; extra arguments (for
example ``--quick``) are passed to every one. Exits non-zero if any failed.

    uv run python bench/run.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def main(argv: list[str]) -> int:
    scripts = sorted(p for p in BENCH.glob("*.py") if p.name != Path(__file__).name)
    failed: list[tuple[str, int]] = []
    for script in scripts:
        rel = script.relative_to(ROOT).as_posix()
        print(f"=== {rel} {' '.join(argv)}".rstrip(), flush=True)
        started = time.monotonic()
        try:
            code = subprocess.call([sys.executable, rel, *argv], cwd=ROOT)
        except KeyboardInterrupt:
            print(f"=== {rel}: interrupted", flush=True)
            return 130
        took = time.monotonic() - started
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"=== {rel}: {status} in {took:.1f} s", flush=True)
        if code != 0:
            failed.append((rel, code))
    if failed:
        print("failed: " + ", ".join(f"{name} (exit {code})" for name, code in failed))
        return 1
    print(f"all {len(scripts)} benchmark(s) passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
