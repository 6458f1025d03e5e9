import os

# Nothing may reach a hub at test time; MuJoCo renders headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

# Tiny models run batch-1 steps: one thread avoids oversubscription when other processes share
# the 2 CPU cores, and keeps timings steady.
torch.set_num_threads(1)
