"""Training throughput (stars per second) of token-design variants on this CPU.

    python benchmark/cpu_throughput.py     # prints a markdown table

Each variant is the ``cpu`` preset with one change (the ablations of
benchmark/gpu_session.py); 5 warm-up steps, then 20 timed training steps on real
training stars, torch limited to 2 threads.
"""

import time
from dataclasses import replace

import torch

from probstar.cli import _overrides
from probstar.data import load_split
from probstar.model import ProbStarNet
from probstar.train import PRESETS, normalized_tensors, sample_context
from probstar.vocab import Normalization

from gpu_session import BASE, VARIANTS  # noqa: E402  (same folder)

VARIANTS = {**{k: BASE + v for k, v in VARIANTS.items()}, "cpu preset": []}


def throughput(cfg, values, sigmas, steps=20, warmup=5):
    torch.manual_seed(0)
    net = ProbStarNet(cfg.model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    query = torch.arange(14)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        idx = torch.randint(0, values.shape[0], (cfg.batch_size,), generator=g)
        ctx = sample_context(values[idx], cfg, g)
        h = net(ctx, sigmas[idx], query)
        y = values[idx][:, query]
        hidden = torch.isfinite(y) & ~torch.isfinite(ctx[:, query])
        loss = (net.head.loss(h, torch.nan_to_num(y), torch.zeros_like(y)) * hidden).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def main():
    torch.set_num_threads(2)
    train = load_split("train")
    values, sigmas = normalized_tensors(train, Normalization.fit(train.values), "cpu")
    print("| variant | training stars/s (2 CPU threads) | parameters |\n|---|---|---|")
    for name, sets in VARIANTS.items():
        cfg = _overrides(PRESETS["cpu"], sets)
        n = sum(p.numel() for p in ProbStarNet(cfg.model).parameters())
        print(f"| {name} | {throughput(cfg, values, sigmas):.0f} | {n:,} |", flush=True)


if __name__ == "__main__":
    main()
