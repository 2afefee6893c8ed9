#!/usr/bin/env bash
# A whole real model trained on 2 CPU cores (no GPU lent), in the order the shipped model's
# parts were built: (1) the trunk from scratch with the Gaussian and mixture heads, with
# the recipe that lets it learn where the Teff-only giant branch ends (photometry targets
# at a quarter of the labels' loss weight: benchmark/NOTES.md, "What smooths it"),
# labels-only contexts of 1 or 2 parameters in half of the steps (5% Teff alone), the
# six magnitudes hidden together in 30%, label errors down to 2 K, averaged weights;
# (2) the spectrum head on the fixed trunk (finetune_spectrum.sh); (3) the flow on the
# fixed network (retrain_flow.sh); (4) the recalibration maps and spectrum widths fitted
# on the validation split. Every stage keeps its best validation epoch.
# Usage: bash benchmark/train_cpu_model.sh OUT [TRUNK]   (~80 min on 2 cores, deterministic)
#        TRUNK: a stage-1 run already trained with these settings (stage 1 is skipped);
#        then OUT/flow/best is the model (validation/*.py --model OUT/flow/best)
set -euo pipefail
out=${1:-runs/cpu_model}
arch="dropout=0.05"
start=$(date +%s)
trunk=${2:-$out/trunk}
[ -n "${2:-}" ] || probstar train --preset cpu --epochs 160 --output "$trunk" --set $arch \
  outputs=gaussian,mixture label_errors=true label_error_min=0.002 p_window=0.5 \
  p_full_spectrum=0.35 p_no_spectrum=0.25 p_labels_only=0.5 labels_only_max=2 \
  p_hide_magnitudes=0.3 photometry_weight=0.25 ema=0.999 checkpoint_every=5
PRESET=cpu ARCH="$arch outputs=gaussian,mixture" \
  bash benchmark/finetune_spectrum.sh "$out/spectrum" "$trunk/best"
PRESET=cpu ARCH="$arch spectrum_layers=2 p_full_spectrum=0.5 p_hide_labels=0.5" \
  bash benchmark/retrain_flow.sh "$out/flow" "$out/spectrum/stage2/best"
probstar recalibrate --model "$out/flow/best"
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$out/time.txt"
