import os

# Nothing may reach a hub at test time; MuJoCo renders headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
