"""One GPU session (<= 9 min): token-design ablations, then the shipped model.

Run on a machine with a CUDA GPU from the repository root, with the library cache
prepared by ``benchmark/make_gpu_cache.py`` (the GPU machine has no network):

    PROBSTAR_CACHE=.gpu python benchmark/gpu_session.py --out OUT_DIR

Phase 1 trains the CPU preset and four variants of it side by side for the same number
of epochs (learning curves: validation robust scatter vs epoch). Phase 2 times a few
steps of the GPU preset, picks the number of epochs that fits the budget, and trains the
shipped model. Everything lands in OUT_DIR: learning curves, logs and the model.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: The ablation base: dim 128, 3 + 2 layers, 14 XP regions (the first CPU preset).
BASE = ["encoder_layers=3", "decoder_layers=2", "ff_mult=4", "xp_regions=14",
        "region_hidden=256", "p_full_spectrum=0.5", "p_hide_labels=0.5"]
VARIANTS = {  # name: --set overrides of the base
    "regions14": [],
    "regions49": ["xp_regions=49"],
    "regions7": ["xp_regions=7"],
    "no_errors": ["use_errors=false"],
    "rarely_full": ["p_full_spectrum=0.1"],
}


def train_cmd(preset, epochs, run, sets):
    return [sys.executable, "-m", "probstar.cli", "train", "--preset", preset, "--epochs",
            str(epochs), "--output", str(run), "--set", *sets]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--ablation-epochs", type=int, default=40)
    p.add_argument("--ablation-seconds", type=int, default=160)
    p.add_argument("--main-seconds", type=int, default=290)
    p.add_argument("--preset", default="gpu", help="preset of the shipped model")
    args = p.parse_args()
    out, runs = Path(args.out), Path("runs")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    runs.mkdir(exist_ok=True)
    procs = {name: subprocess.Popen(
        train_cmd("cpu", args.ablation_epochs, runs / name,
                  ["checkpoint_every=2", *BASE, *sets]),
        stdout=subprocess.DEVNULL, stderr=open(runs / f"{name}.log", "w"))
        for name, sets in VARIANTS.items()}
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(1, args.ablation_seconds - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
    with open(out / "ablations.jsonl", "w") as f:
        for name in VARIANTS:
            curve = runs / name / "learning_curve.jsonl"
            for line in curve.read_text().splitlines() if curve.exists() else []:
                f.write(json.dumps({"variant": name, **json.loads(line)}) + "\n")
    print(f"ablations done after {time.time() - t0:.0f} s", flush=True)

    # Probe the GPU preset's speed, then size the shipped run to the time left.
    probe = runs / "probe"
    shutil.rmtree(probe, ignore_errors=True)
    result = subprocess.run(train_cmd(args.preset, 2, probe, ["checkpoint_every=1"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    curve_file = probe / "learning_curve.jsonl"
    if result.returncode or not curve_file.exists():
        print(f"probe failed:\n{result.stderr[-3000:]}", flush=True)
        per_epoch = 1.0
    else:
        curve = [json.loads(x) for x in curve_file.read_text().splitlines()]
        per_epoch = max(curve[-1]["epoch_seconds"] * 1.15, 0.05)
    epochs = int(max(20, min(800, args.main_seconds / per_epoch)))
    print(f"gpu preset: {per_epoch:.2f} s/epoch -> {epochs} epochs", flush=True)
    main_run = runs / "shipped"
    shutil.rmtree(main_run, ignore_errors=True)
    log = open(out / "shipped_train.log", "w")
    proc = subprocess.Popen(train_cmd(args.preset, epochs, main_run, ["checkpoint_every=10"]),
                            stdout=log, stderr=log)
    try:
        proc.wait(timeout=args.main_seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        print("shipped run killed at its time limit; last checkpoint kept", flush=True)
    best = main_run / "best" if (main_run / "best").exists() else main_run
    for path in (main_run / "learning_curve.jsonl", best / "model.safetensors",
                 best / "config.json"):
        if path.exists():
            shutil.copy(path, out / path.name)
    print(f"total {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
