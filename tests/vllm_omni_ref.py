"""vLLM-Omni 0.30.0's own code, loaded from its wheel (setup.sh downloads it into .venv/vllm-omni-0.30.0; it is not
installed: its dependencies pull vllm and a CUDA torch). The files run unchanged:

- `vllm_omni/entrypoints/openai/protocol/videos.py`: VideoGenerationRequest (the form a request must pass),
  VideoResponse / VideoAction / VideoListResponse / VideoDeleteResponse (what a job reply must parse as);
- `vllm_omni/diffusion/models/cosmos3/action.py`: EMBODIMENT_TO_DOMAIN_ID, resolve_domain_id,
  normalize_action_mode, load_action_tensor, action_start_frame_offset, vision_condition_indexes;
- `vllm_omni/diffusion/models/cosmos3/utils.py`: COSMOS3_VAE_TEMPORAL_COMPRESSION, VIDEO_RES_SIZE_INFO;
- `vllm_omni/entrypoints/openpi/{serving.py, connection.py}`: PolicyServerConfig and RobotRealtimeConnection
  (the OpenPI endpoint Cosmos3-Nano-Policy-DROID is served by), its msgpack `_pack` / `_unpack`.

Three imports of theirs need vllm, which does not run on a CPU box; they are stood in for while loading:
`vllm.logger.init_logger` (logging), `vllm_omni.diffusion.models.progress_bar._is_rank_zero` and
`vllm_omni.inputs.data.DIFFUSION_QUALITY_LEVELS` (its value read from the wheel's own file)."""

from __future__ import annotations

import ast
import importlib.util
import logging
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEEL = ROOT / ".venv" / "vllm-omni-0.30.0"


def _constant(path: Path, name: str):
    for node in ast.parse(path.read_text()).body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} not in {path}")


def load():
    """A namespace with vLLM-Omni's videos protocol module (`videos`) and Cosmos 3 helpers (`action`,
    `utils`); skips the test where setup.sh could not fetch the wheel."""
    if not (WHEEL / "vllm_omni").is_dir():
        pytest.skip(f"vLLM-Omni's wheel is not unpacked at {WHEEL}; run ./scripts/setup.sh (needs the package registry)")
    pkg = WHEEL / "vllm_omni"
    stubs = {
        "vllm": types.ModuleType("vllm"),
        "vllm.logger": types.SimpleNamespace(init_logger=logging.getLogger),
        "vllm_omni.diffusion.models.progress_bar": types.SimpleNamespace(_is_rank_zero=lambda: True),
        "vllm_omni.inputs.data": types.SimpleNamespace(
            DIFFUSION_QUALITY_LEVELS=_constant(pkg / "inputs" / "data.py", "DIFFUSION_QUALITY_LEVELS")),
    }
    packages = ["vllm_omni", "vllm_omni.entrypoints", "vllm_omni.entrypoints.openai",
                "vllm_omni.entrypoints.openai.protocol", "vllm_omni.diffusion", "vllm_omni.diffusion.models",
                "vllm_omni.diffusion.models.cosmos3", "vllm_omni.inputs", "vllm_omni.entrypoints.openpi"]
    saved = {k: sys.modules.get(k) for k in [*stubs, *packages]}
    try:
        for name in packages:  # bare packages: their __init__ files import the engine
            mod = types.ModuleType(name)
            mod.__path__ = [str(pkg.parent / name.replace(".", "/"))]
            sys.modules[name] = mod
        sys.modules.update(stubs)
        out = {}
        for key, rel in (("image_api_utils", "entrypoints/openai/image_api_utils.py"),
                         ("videos", "entrypoints/openai/protocol/videos.py"),
                         ("utils", "diffusion/models/cosmos3/utils.py"),
                         ("action", "diffusion/models/cosmos3/action.py"),
                         ("openpi_serving", "entrypoints/openpi/serving.py"),
                         ("openpi_connection", "entrypoints/openpi/connection.py")):
            name = "vllm_omni." + rel[:-3].replace("/", ".")
            spec = importlib.util.spec_from_file_location(name, pkg / rel)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            out[key] = mod
            saved.setdefault(name, None)
        return types.SimpleNamespace(**out)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
