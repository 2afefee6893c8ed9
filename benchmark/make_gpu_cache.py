"""Write the train + validation stars as a float16 cache small enough to carry to a GPU.

    python benchmark/make_gpu_cache.py .gpu    # then PROBSTAR_CACHE=.gpu on the GPU machine
"""

import sys
from pathlib import Path

import numpy as np

from probstar.data.library import cache_name, load_library
from probstar.data.split import split_mask

obs = load_library()
keep = ~split_mask(obs.ids, "test")  # the test split never travels to training
folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
np.savez_compressed(folder / cache_name(),
                    values=obs.values[keep].astype(np.float16),
                    errors=obs.errors[keep].astype(np.float16), ids=obs.ids[keep],
                    apogee_id=obs.extra["apogee_id"][keep])
print(f"{keep.sum()} stars -> {folder}")
