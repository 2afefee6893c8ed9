#!/usr/bin/env bash
# The shipped model of issue 3: the issue-2 model (benchmark/results/gaussian_v1, GPU
# preset, Gaussian head) fine-tuned on 2 CPU cores with the mixture and flow heads added.
# Token embedding and encoder stay fixed; decoder and heads train. Labels shown as inputs
# carry synthetic errors or none, never their APOGEE errors (label_errors, see
# probstar/train.py).
# Stage 1: all contexts, 25% labels-only; the 12-epoch schedule stopped after epoch 5.
# Stage 2: from stage 1, half the contexts show only 1 or 2 of teff, logg, fe_h,
# alpha_m, ak ("given Teff, what is logg?"), 7 epochs.
# Usage: bash benchmark/finetune_pdf_heads.sh OUT_FOLDER   (~27 min on 2 cores)
set -euo pipefail
out=${1:-runs/pdf_heads}
common="freeze_encoder=true label_errors=true batch_size=512 checkpoint_every=1 device=cpu threads=2"
start=$(date +%s)
probstar train --preset gpu --epochs 12 --stop-after 5 --output "$out/stage1" \
  --set init_from=benchmark/results/gaussian_v1 p_labels_only=0.25 lr=3e-4 $common
probstar train --preset gpu --epochs 7 --output "$out/stage2" \
  --set init_from="$out/stage1" p_labels_only=0.5 labels_only_max=2 lr=2e-4 $common
echo "wall seconds: $(( $(date +%s) - start ))" | tee "$out/time.txt"
