"""Experiment: do few-scalar contexts teach the simulated model to read colours?

    python benchmark/sim_few_scalars.py                  # ~15 min on 2 cores -> runs/few_scalars
    python validation/simulation.py --model runs/few_scalars/model --output OUT/simulation.md
    python benchmark/input_information.py --sim-model runs/few_scalars/model \\
        --output OUT/input_information.md

A fourth stage on top of the shipped simulated model (3 epochs, a fresh population of
500,000 stars, lr 3e-4, the third stage's 2 K input-error floor) in which a quarter of the
contexts show only 1-4 random scalars (``TrainConfig.p_few_scalars``), then the usual
recalibration. The model is not shipped; benchmark/results/sim_few_scalars/ holds the
two reports and the learning curve, benchmark/NOTES.md what they say. Deterministic on CPU.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from probstar.data.library import data_hash
from probstar.query import shipped_model_path
from probstar.simulate import simulate
from probstar.train import PRESETS, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))
from simulation import N_TRAIN, install, validation_stars  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/few_scalars")
    args = p.parse_args()
    out = Path(args.out)
    train_obs, _ = simulate(N_TRAIN, seed=30)  # stages 1-3 used seeds 0, 10, 20
    cfg = replace(PRESETS["sim"], lr=3e-4, epochs=3, label_error_min=0.002,
                  p_few_scalars=0.25, few_scalars_max=4, seed=3,
                  init_from=str(shipped_model_path().parent / "simulated"))
    val = validation_stars()
    train(cfg, train_obs, val, out / "run", data_hash=data_hash(train_obs))
    install(out / "run" / "best", out / "model", val)


if __name__ == "__main__":
    main()
