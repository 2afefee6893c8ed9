"""Training throughput (stars per second) of token-design variants on this CPU.

    python benchmark/cpu_throughput.py     # prints a markdown table

Each variant is the ablation base of benchmark/gpu_session.py with one change, plus the
``cpu`` preset itself. Each trains for 2 epochs on 4,096 real training stars through
:func:`probstar.train.train` (torch limited to 2 threads); the figure is the second
epoch's stars per second from the run's learning curve.
"""

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from gpu_session import BASE, VARIANTS  # same folder

from probstar.data import load_split
from probstar.model import ProbStarNet
from probstar.train import PRESETS, train

RUNS = {**{k: BASE + v for k, v in VARIANTS.items()}, "cpu preset": []}


def main():
    torch.set_num_threads(2)
    stars = load_split("train").select(slice(0, 4096))
    val = load_split("validation").select(slice(0, 256))
    print("| variant | training stars/s (2 CPU threads) | parameters |\n|---|---|---|")
    for name, sets in RUNS.items():
        cfg = replace(PRESETS["cpu"].with_settings(sets), epochs=2, checkpoint_every=1)
        with tempfile.TemporaryDirectory() as run:
            train(cfg, stars, val, run, progress=False)
            curve = [json.loads(x) for x in (Path(run) / "learning_curve.jsonl").open()]
        n = sum(p.numel() for p in ProbStarNet(cfg.model).parameters())
        print(f"| {name} | {curve[-1]['stars_per_second']:.0f} | {n:,} |", flush=True)


if __name__ == "__main__":
    main()
