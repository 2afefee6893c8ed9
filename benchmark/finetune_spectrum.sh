#!/usr/bin/env bash
# The spectrum head of the shipped model (issue 5): the shipped network with a spectrum
# head added (2 cross-attention blocks over the encoded star, 14 region queries, rank-8
# pixel covariance), trained alone (train_only=spectrum): every other weight is frozen,
# so every scalar answer of the model is unchanged. Contexts: no spectrum (half of them;
# 40% of all contexts show only 1 to 5 of teff, logg, fe_h, alpha_m, ak: the
# parameters -> spectrum question) or a partial one (random 7-pixel chunks, or one
# contiguous window of them: inpainting); the loss scores every hidden observed pixel.
# Stage 1: 15 epochs at peak lr 1e-3; stage 2: 20 more at 5e-4 from stage 1's best
# validation epoch (NLL per pixel of the validation spectra given the five parameters).
# Stage 2's best epoch is the shipped model; the recalibration of the scalar answers is
# refitted on it (the same maps, the scalar answers being unchanged).
# Usage: bash benchmark/finetune_spectrum.sh OUT_FOLDER [BASE]   (~50 min on 2 cores;
#        BASE: the network the head is added to, default the shipped model)
#        PRESET=cpu ARCH="dropout=0.05 outputs=gaussian,mixture" bash ... for a BASE of
#        another architecture: its preset and model settings (default: the gpu preset's)
set -euo pipefail
out=${1:-runs/spectrum}
base=${2:-probstar/models/default}
common="train_only=spectrum spectrum_layers=2 ${ARCH:-} p_full_spectrum=0 p_no_spectrum=0.5
        p_window=0.5 p_hide_labels=0.3 p_labels_only=0.4 labels_only_max=5
        label_errors=true batch_size=512 checkpoint_every=1 device=cpu threads=2"
start=$(date +%s)
probstar train --preset "${PRESET:-gpu}" --epochs 15 --output "$out/stage1" \
  --set init_from="$base" lr=1e-3 $common
probstar train --preset "${PRESET:-gpu}" --epochs 20 --output "$out/stage2" \
  --set init_from="$out/stage1/best" lr=5e-4 $common
probstar recalibrate --model "$out/stage2/best"
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$out/time.txt"
