"""Write into a model's config which names its training data showed always / never with
a measurement error (``probstar.train.errors_seen``; the question API's input guards).

    python benchmark/errors_seen.py                                   # both shipped models
    python benchmark/errors_seen.py --model DIR [--simulated]         # another model

Models trained since the record existed carry it already; the shipped ones were trained
before, so it is computed here from their training data: the real model's train split,
and for the simulated model 20,000 simulated stars (the simulator gives every star the
same kinds of error, so the lists do not depend on the sample). Deterministic.
"""

from __future__ import annotations

import argparse

import torch

from probstar.checkpoint import update_config
from probstar.data import load_split
from probstar.query import load_model, shipped_model_path
from probstar.simulate import simulate
from probstar.train import TrainConfig, errors_seen, normalized_tensors


def record(folder, simulated: bool) -> dict[str, list[str]]:
    model = load_model(folder)
    data = simulate(20_000, seed=100)[0] if simulated else load_split("train")
    values, sigmas = normalized_tensors(data, model.normalization, torch.device("cpu"))
    lists = errors_seen(values, sigmas, TrainConfig.from_dict(model.meta["train"]))
    update_config(folder, **lists)
    return lists


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="model folder (default: both shipped models)")
    p.add_argument("--simulated", action="store_true", help="trained on simulated stars")
    args = p.parse_args()
    shipped = shipped_model_path()
    jobs = [(args.model, args.simulated)] if args.model else \
        [(shipped, False), (shipped.with_name("simulated"), True)]
    for folder, simulated in jobs:
        print(folder, record(folder, simulated))


if __name__ == "__main__":
    main()
