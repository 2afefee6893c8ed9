"""One GPU session (<= 9 min): whole models trained from scratch, side by side.

- ``joint`` and ``joint_full``: every head (Gaussian, mixture, flow, spectrum) trained
  together from scratch, the spectrum loss training the shared encoder too (the shipped
  model before was a Gaussian-head network with heads fine-tuned onto a frozen trunk).
  Two context recipes; the one with the better validation score is the candidate.
- ``joint_v2``: ``joint`` with the recipe found on 2 cores since (hidden magnitudes,
  label errors down to 2 K, averaged weights). GPU session 3 ran ``--runs joint
  joint_full holdout``; session 5 ``joint_v2`` (45 epochs in 380 s: a step is host-bound,
  4-6 per second).
- ``joint_v3``: ``joint_v2`` with ``photometry_weight=0.25``, which on 2 cores lets
  the network learn where the Teff-only giant branch ends.
- ``joint_v4`` (the default): ``joint_v3`` without the flow head, which is trained
  afterwards on the fixed network on 2 CPU cores (``benchmark/retrain_flow.sh OUT
  RUN/best``, as the shipped flow was). The flow's loss dispatches 72% of a step's
  operators (``python benchmark/step_operators.py``), and a step here is host-bound, so
  the lease buys ~3.6x fewer operators per step.
- ``joint_v2_b2048``, ``joint_v2_b4096``: ``joint_v2`` at larger batches, which cost
  about the same per step, side by side.
- ``holdout``: queries tied to the input embeddings, ``alpha_m`` removed from the data
  and ``bp_rp`` shown but never a target: the base of the unseen-request and fine-tuning
  experiments (``validation/unseen.py``, ``validation/finetune.py``).

Run on a CUDA machine from the repository root, with the cache of
``benchmark/make_gpu_cache.py`` (the GPU machine has no network):

    PROBSTAR_CACHE=.gpu python benchmark/gpu_joint.py --out OUT_DIR

The runs share the GPU. A 2-epoch probe of all of them at once measures the epoch time,
then each run gets the epochs that fit ``--seconds``. Everything lands in OUT_DIR as one
tar archive split into 15 MB pieces (``runs.tar.partNN``; ``cat`` them to rebuild it):
each run's best validation checkpoint (``best/``), config and learning curve, plus logs.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

RECIPE = ["label_errors=true", "p_window=0.5", "dropout=0.05"]
SPECTRUM = ["spectrum_layers=2", *RECIPE]
JOINT = [*SPECTRUM, "p_full_spectrum=0.35", "p_no_spectrum=0.25", "p_labels_only=0.35",
         "labels_only_max=5"]
JOINT_V2 = [*JOINT, "p_hide_magnitudes=0.3", "label_error_min=0.002", "ema=0.999"]
JOINT_V3 = [*JOINT_V2, "photometry_weight=0.25"]
RUNS = {  # name: --set overrides of the gpu preset
    "joint": JOINT,
    "joint_full": [*SPECTRUM, "p_full_spectrum=0.5", "p_no_spectrum=0.2", "p_labels_only=0.3",
                   "labels_only_max=2"],
    # joint, with what the CPU runs found since GPU session 3 (benchmark/NOTES.md): the
    # six magnitudes hidden together in a third of contexts (colours read next to Teff),
    # label errors down to 2 K (the limit of a negligible error), averaged weights
    # (JOINT_V2, above)
    "joint_v2": JOINT_V2,
    # joint_v2 with the photometry targets at a quarter of the labels' weight: at full
    # weight they smooth the Teff-only giant branch (benchmark/NOTES.md, "Where the
    # Teff-only giant branch ends")
    "joint_v3": JOINT_V3,
    # joint_v3 without the flow head, most of a host-bound step's operators (9,768 of a
    # step's forward and backward ones, 2,692 without it: benchmark/step_operators.py);
    # the flow trains on the fixed network afterwards, on CPU (benchmark/retrain_flow.sh)
    "joint_v4": [*JOINT_V3, "outputs=gaussian,mixture"],
    # joint_v2 at larger batches: a step is host-bound on the GPU (GPU session 5: 4-6
    # steps/s at batch 1024, 45 epochs in a lease), so a larger batch buys epochs
    "joint_v2_b2048": [*JOINT_V2, "batch_size=2048", "lr=7e-4"],
    "joint_v2_b4096": [*JOINT_V2, "batch_size=4096", "lr=1e-3"],
    "holdout": [*RECIPE, "tied_queries=true", "outputs=gaussian,mixture",
                "drop_names=alpha_m", "input_only=bp_rp", "p_labels_only=0.3",
                "labels_only_max=2"],
}


def launch(name, epochs, folder, extra, log):
    cmd = [sys.executable, "-m", "probstar.cli", "train", "--preset", "gpu", "--epochs",
           str(epochs), "--output", str(folder / name), "--set", *RUNS[name], *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=log)


def wait_all(procs, deadline):
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            print(f"{name}: killed at the time limit (its last checkpoint is kept)", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=380, help="training time of each run")
    p.add_argument("--runs", nargs="+", default=["joint_v4"],
                   choices=list(RUNS))
    args = p.parse_args()
    out, folder = Path(args.out), Path("runs/gpu_joint")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.time()

    probe = folder / "probe"
    with open(out / "probe.log", "w") as log:
        procs = {n: launch(n, 2, probe, ["checkpoint_every=1"], log) for n in args.runs}
        wait_all(procs, time.time() + 150)
    epochs = {}
    for name in args.runs:
        curve = probe / name / "learning_curve.jsonl"
        seconds = [json.loads(x)["epoch_seconds"] for x in curve.read_text().splitlines()] \
            if curve.exists() else [5.0]
        # the second epoch's time: the first one's holds the start-up
        epochs[name] = int(max(10, args.seconds / (seconds[-1] * 1.1)))
        print(f"{name}: {seconds[-1]:.2f} s/epoch (shared GPU) -> {epochs[name]} epochs",
              flush=True)
    shutil.rmtree(probe)

    deadline = time.time() + args.seconds + 60
    with open(out / "train.log", "w") as log:
        # ~10 validation passes a run: they are not in the measured epoch time
        procs = {n: launch(n, epochs[n], folder, [f"checkpoint_every={epochs[n] // 10}"], log)
                 for n in args.runs}
        wait_all(procs, deadline)
    for name in args.runs:
        (folder / name / "train_state.pt").unlink(missing_ok=True)  # optimizer state
        if (folder / name / "best").exists():  # the best validation epoch is what ships;
            (folder / name / "model.safetensors").unlink()  # the last one stays behind
        curve = folder / name / "learning_curve.jsonl"
        if curve.exists():
            print(name, curve.read_text().splitlines()[-1], flush=True)
    subprocess.run(f"tar -cf - -C runs gpu_joint | split -b 15m -d - {out}/runs.tar.part",
                   shell=True, check=True)
    print(f"total {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
