#!/usr/bin/env bash
# One GPU lease (<= 10 min): the real joint model (benchmark/gpu_joint.py, run joint_v4:
# no flow head, which trains afterwards on CPU with benchmark/retrain_flow.sh; GPU session 5
# ran joint_v2, which smooths the Teff-only giant branch: benchmark/NOTES.md)
# and the simulated model (benchmark/gpu_simulated.py, run sim_gpu_hidemag) trained side
# by side, then runs, logs and learning curves packed into OUT as 15 MB pieces of one tar
# archive (the device tool brings back at most 8 files). GPU session 5 ran, on one H200:
#
#   bash benchmark/gpu_both.sh OUT          # caches: benchmark/make_gpu_cache.py .gpu and
#                                           # the simulator's (benchmark/gpu_simulated.py)
# then here: cat OUT/all.tar.part* | tar -xf -
set -u
out=$1
mkdir -p "$out/logs"
export PYTHONUNBUFFERED=1
nvidia-smi > "$out/logs/nvidia-smi.txt" 2>&1
PROBSTAR_CACHE=.gpu timeout 540 python3 benchmark/gpu_joint.py --runs joint_v4 --seconds 380 \
    --out "$out/logs/joint" > "$out/logs/joint.log" 2>&1 &
PROBSTAR_CACHE=.gpu_sim timeout 540 python3 benchmark/gpu_simulated.py --runs sim_gpu_hidemag \
    --seconds 340 --out "$out/logs/sim" > "$out/logs/sim.log" 2>&1 &
wait
rm -f "$out"/logs/joint/runs.tar.part*   # gpu_joint.py's own archive: runs/ is packed below
rm -rf "$out"/logs/sim/sim_gpu_*         # gpu_simulated.py's copy of its run, likewise
tar -cf - --exclude=train_state.pt --no-wildcards-match-slash \
    --exclude='runs/gpu_*/*/model.safetensors' runs/gpu_joint runs/gpu_simulated \
    -C "$out" logs | split -b 15m -d - "$out/all.tar.part"
rm -rf "$out/logs"
ls -la "$out"
tail -n 3 runs/gpu_joint/*/learning_curve.jsonl runs/gpu_simulated/*/learning_curve.jsonl
