"""Operators dispatched per training step, by part: what a host-bound GPU step pays for.

    python benchmark/step_operators.py                  # gpu_joint.py's joint_v3 recipe
    python benchmark/step_operators.py --set outputs=gaussian,mixture   # no flow head

On a GPU a training step of the real joint model is host-bound (GPU session 5: 4-6
steps/s whatever the batch, benchmark/NOTES.md): its time is the host's, launching one
kernel per operator. So the number of operators a step dispatches, and where they come
from, says what to cut. They are counted here on the CPU with ``torch.profiler``, with a
tiny network (the count does not depend on the width) and the GPU's code path (one
network pass over the whole batch, ``encoded_outputs(grouped=False)``), part by part as
``probstar.train.train`` runs a step. View operators (reshape, transpose, slicing...),
which launch no kernel, are left out. The optimizer's and the moving average's counts are
not the GPU's: on a CPU their ``_foreach`` operators fall back to one operator per
tensor, on a GPU they are fused into a few kernels. Deterministic (seeded), ~30 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from probstar.data.library import load_split
from probstar.model.network import ProbStarNet
from probstar.train import PRESETS, encoded_outputs, head_losses, moving_average, \
    normalized_tensors, sample_context, training_targets
from probstar.vocab import Normalization

import gpu_joint  # (benchmark/ is the script's folder)

VIEWS = ("view", "as_strided", "detach", "resolve_", "alias", "squeeze", "transpose",
         "aten::t", "expand", "slice", "select", "reshape", "permute", "unbind", "split",
         "chunk", "narrow", "unflatten", "flatten")
TINY = ["dim=16", "heads=2", "region_hidden=16", "batch_size=64"]


def operators(fn):
    """``fn()`` and the number of kernel-launching operators it dispatched."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = fn()
    return out, sum(e.count for e in prof.key_averages()
                    if e.key.startswith("aten::") and not any(v in e.key for v in VIEWS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="joint_v3", choices=list(gpu_joint.RUNS),
                   help="the recipe (benchmark/gpu_joint.py's runs)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings on top (probstar train --set syntax)")
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = PRESETS["gpu"].with_settings([*gpu_joint.RUNS[args.run], *TINY, *args.set])
    obs = load_split("train")
    obs = obs.select(np.arange(4096))
    net = ProbStarNet(cfg.model)
    norm = Normalization.fit(obs.values)
    values, sigmas = normalized_tensors(obs, norm, torch.device("cpu"))
    targets = training_targets(values, sigmas, cfg)
    trained = targets.trained
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    average = moving_average(net, cfg.ema) if cfg.ema else None
    g = torch.Generator()
    g.manual_seed(0)
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for _ in range(args.steps):
        idx = torch.randint(0, values.shape[0], (cfg.batch_size,), generator=g)
        parts = {}
        (context, context_sigmas), parts["context sampling"] = operators(
            lambda: sample_context(values[idx], sigmas[idx], cfg, g))
        (h, spectrum), parts["network pass (tokens, encoder, decoder, spectrum head)"] = \
            operators(lambda: encoded_outputs(net, context, context_sigmas, values[idx],
                                              sigmas[idx], trained, net.spectrum is not None,
                                              grouped=False))
        y, var = targets.y[idx], targets.var[idx]
        hidden = torch.isfinite(y) & ~torch.isfinite(context[:, trained])
        losses, parts[f"losses of the heads ({', '.join(net.outputs)})"] = operators(
            lambda: head_losses(net, h, torch.nan_to_num(y), var, hidden, targets.joint, g,
                                ~torch.isfinite(y), targets.weight))
        if spectrum is not None:
            losses["spectrum"] = spectrum
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        _, parts["backward"] = operators(total.backward)
        _, parts["clip + AdamW (CPU: unfused)"] = operators(lambda: (
            torch.nn.utils.clip_grad_norm_(list(net.parameters()), 1.0), opt.step()))
        if average is not None:
            _, parts["moving average (CPU: unfused)"] = operators(
                lambda: average.update_parameters(net))
        for k, v in parts.items():
            counts[k] = counts.get(k, 0) + v
    per_step = {k: v / args.steps for k, v in counts.items()}
    forward_backward = sum(v for k, v in per_step.items() if "CPU" not in k)
    print(f"run {args.run} {' '.join(args.set)}: operators per training step "
          f"({args.steps} steps, batch {cfg.batch_size}, {time.perf_counter() - t0:.0f} s)")
    for k, v in per_step.items():
        share = "" if "CPU" in k else f"  {100 * v / forward_backward:4.1f}%"
        print(f"  {k:56s} {v:8.0f}{share}")
    print(f"  {'forward + backward':56s} {forward_backward:8.0f}")


if __name__ == "__main__":
    main()
