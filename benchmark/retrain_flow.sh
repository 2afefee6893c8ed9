#!/usr/bin/env bash
# The shipped flow head, retrained from its identity start on the shipped network with
# every other weight fixed (so every other answer stays as it is), labels the data lacks
# scored as draws from the mixture's answer (probstar/train.py, head_losses;
# benchmark/NOTES.md, "Stars without [Fe/H] in the flow"). The recipe of the flow stage
# of finetune_pdf_heads.sh, the weights scored and saved being a moving average of the
# trained ones over ~3 epochs (ema=0.995; benchmark/NOTES.md, "Averaged flow weights");
# the epoch with the best joint log density on the validation split is kept (OUT/best).
# That folder then takes the base model's recalibration maps (fitted on the mixture's
# answers), spectrum widths and likelihood temperature (the spectrum head's), where it has
# them: the weights they belong to are checked to be bit-identical.
# Usage: bash benchmark/retrain_flow.sh OUT_FOLDER [BASE]   (~30 min on 2 cores;
#        deterministic; BASE: the shipped model, or a network trained without a flow head,
#        e.g. benchmark/gpu_joint.py's joint_v4)
#        PRESET=cpu ARCH="dropout=0.05 spectrum_layers=2" bash benchmark/retrain_flow.sh ...
#        for a BASE of another architecture: its preset and model settings (default: the
#        gpu preset with a spectrum head, the shipped model's)
#        cp OUT_FOLDER/best/* probstar/models/default/   (to ship it)
set -euo pipefail
out=${1:-runs/flow_ema}
base=${2:-probstar/models/default}
probstar train --preset "${PRESET:-gpu}" --epochs 20 --output "$out" \
  --set init_from=$base reinit=outputs.flow train_only=outputs.flow ${ARCH:-spectrum_layers=2} \
  p_labels_only=0.6 lr=5e-4 labels_only_max=2 label_errors=true batch_size=512 \
  checkpoint_every=1 device=cpu threads=2 ema=0.995
python - "$base" "$out/best" <<'EOF'
import json
import sys

import torch
from safetensors.torch import load_file

from probstar.checkpoint import update_config

base, new = sys.argv[1:]
old_w, new_w = load_file(f"{base}/model.safetensors"), load_file(f"{new}/model.safetensors")
same = [k for k in new_w if not k.startswith("outputs.flow.")]
assert set(same) == {k for k in old_w if not k.startswith("outputs.flow.")}
assert all(torch.equal(old_w[k], new_w[k]) for k in same), "a weight besides the flow moved"
config = json.load(open(f"{base}/config.json"))
update_config(new, **{k: config[k] for k in
                      ("recalibration", "spectrum_widths", "likelihood_temperature")
                      if k in config})
print(f"{new}: flow retrained, {len(same)} other tensors identical to {base}")
EOF
