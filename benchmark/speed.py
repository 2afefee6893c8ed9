"""Speed of the shipped model on this machine: load time and test-split prediction.

    python benchmark/speed.py            # writes benchmark/speed.md

Times are wall clock, best of 3, with torch limited to 2 threads (the reference machine
has 2 cores).
"""

import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from probstar.cli import main as cli
from probstar.query import load_model


def best_of(fn, n=3):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    torch.set_num_threads(2)
    load = best_of(load_model)
    with tempfile.TemporaryDirectory() as tmp:
        table, out = Path(tmp) / "test.fits", Path(tmp) / "pred.csv"
        cli(["data", "export", "--split", "test", "--output", str(table)])
        predict = best_of(lambda: cli(["predict", str(table), "--request", "teff", "logg",
                                       "fe_h", "--output", str(out)]))
    report = f"""# Speed of the shipped model

Command: `python benchmark/speed.py` ({platform.processor() or platform.machine()},
{torch.get_num_threads()} torch threads, torch {torch.__version__}, best of 3).

| what | seconds |
|---|---|
| `load_model()` (shipped model) | {load:.2f} |
| `probstar predict` on the test split (3,938 stars, full XP + photometry; \
teff logg fe_h; read + predict + write) | {predict:.1f} |
"""
    Path(__file__).with_name("speed.md").write_text(report)
    print(report)


if __name__ == "__main__":
    sys.exit(main())
