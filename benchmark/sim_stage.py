"""Experiment: one more training stage on top of the shipped simulated model.

    python benchmark/sim_stage.py --out runs/few_scalars --set p_few_scalars=0.25
    python benchmark/sim_stage.py --out runs/sim_ema --set ema=0.999
    python validation/simulation.py --model OUT/model --output RESULTS/simulation.md
    python benchmark/input_information.py --sim-model OUT/model \\
        --output RESULTS/input_information.md

The stage: the shipped model's third stage again (3 epochs, lr 3e-4, the 2 K input-error
floor; validation/simulation.py, STAGES) on a fresh population of 500,000 stars, with
the settings given by ``--set`` (``probstar train --set`` syntax) on top, then the usual
recalibration into OUT/model; OUT/run holds the run (learning curve, best/, and
train_state.pt, whose raw weights are the last epoch's). ~15 min on 2 cores,
deterministic on CPU. ``--set init_from= epochs=2 lr=1e-3 label_error_min=0.02``
trains from scratch instead (benchmark/NOTES.md, "Why the simulated model reads two
colours poorly"). The models are not shipped; benchmark/results/sim_few_scalars/,
results/sim_ema/ and results/colour_reading/ hold their reports, benchmark/NOTES.md what
they say.
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
from simulation import N_TRAIN, STAGES, install, validation_stars  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="training settings on top of the stage (e.g. ema=0.999)")
    args = p.parse_args()
    out = Path(args.out)
    train_obs, _ = simulate(N_TRAIN, seed=30)  # stages 1-3 used seeds 0, 10, 20
    lr, epochs, error_min = STAGES[-1]
    cfg = replace(PRESETS["sim"], lr=lr, epochs=epochs, label_error_min=error_min, seed=3,
                  init_from=str(shipped_model_path().parent / "simulated"))
    cfg = cfg.with_settings(args.set)
    val = validation_stars()
    train(cfg, train_obs, val, out / "run", data_hash=data_hash(train_obs))
    install(out / "run" / "best", out / "model", val)


if __name__ == "__main__":
    main()
