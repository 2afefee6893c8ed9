"""Where a training step's time goes: torch.profiler around one short training run.

    python benchmark/profile_training.py --preset sim_gpu --steps 30 --device cuda
    python benchmark/profile_training.py --preset gpu --data real --steps 30 --device cuda

Trains one epoch of ``--steps`` batches (simulated stars, or the real train split) with
``probstar.train.train`` itself: a warm-up epoch gives the throughput (stars/s, no
profiler), a second one runs under the profiler, which prints the operators that take
the most device and host time (its counts include the epoch's validation pass).
"""

import argparse
import json
import tempfile
import time
from dataclasses import replace

import numpy as np
from torch.profiler import ProfilerActivity, profile

from probstar.train import PRESETS, train


def stars(data: str, n: int):
    if data == "sim":
        from probstar.simulate import simulate
        return simulate(n, seed=7)[0], simulate(500, seed=8)[0]
    from probstar.data.library import load_split
    train_split = load_split("train")
    return train_split.select(np.arange(min(n, len(train_split)))), \
        load_split("validation").select(np.arange(500))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="sim_gpu", choices=sorted(PRESETS))
    p.add_argument("--data", default="sim", choices=("sim", "real"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cuda")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings as `probstar train --set` takes them")
    args = p.parse_args()
    cfg = replace(PRESETS[args.preset].with_settings(args.set), epochs=1,
                  device=args.device, checkpoint_every=1)
    train_obs, val_obs = stars(args.data, args.steps * cfg.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, train_obs, val_obs, f"{tmp}/warm", progress=False)  # kernels, allocator
        with open(f"{tmp}/warm/learning_curve.jsonl") as f:
            rate = json.loads(f.readline())["stars_per_second"]
        t0 = time.perf_counter()
        activities = [ProfilerActivity.CPU] + \
            ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=activities) as prof:
            train(cfg, train_obs, val_obs, f"{tmp}/run", progress=False)
        seconds = time.perf_counter() - t0
    print(f"{args.preset} {' '.join(args.set)} batch {cfg.batch_size}: {rate:,.0f} stars/s "
          f"without the profiler; {args.steps} steps + validation in {seconds:.1f} s under it")
    table = prof.key_averages()
    if args.device == "cuda":
        print(table.table(sort_by="self_cuda_time_total", row_limit=12))
    print(table.table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
