"""One video request, read off a multipart form and checked field by field as vLLM-Omni 0.30.0 checks it:
`vllm_omni/entrypoints/openai/video/generation/helpers.py` `_parse_video_form` and
`entrypoints/openai/protocol/videos.py` `VideoGenerationRequest` (size `^\\d+x\\d+$`, fps >= 1 and finite, seed in
int64, num_frames >= 1, extra_params a JSON object), and `diffusion/models/cosmos3/action.py` (action_mode,
domain resolution, action `[T, D]` or `[1, T, D]`, action_chunk_size = num_frames or num_frames - 1, an action
narrower than the model's zero-padded, a wider one refused). Every refusal is an `ApiError` naming the field."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from .errors import ApiError

INT64 = (-(2**63), 2**63 - 1)
MODES = ("policy", "forward_dynamics", "inverse_dynamics")
SIZE = re.compile(r"^\d+x\d+$")
MAX_SIDE = 4096  # a size past this is refused before any frame is made


@dataclass
class VideoRequest:
    model: str | None
    prompt: str
    mode: str
    num_frames: int
    chunk: int  # action_chunk_size
    fps: float | None
    seed: int
    size: tuple[int, int] | None  # (width, height)
    extra: dict
    frames: np.ndarray | None = None  # the decoded input_reference (T, H, W, 3)
    action: np.ndarray | None = None  # (chunk, D) physical units, padded to the served width
    state: np.ndarray | None = None  # (T, S) or None
    session: str | None = None
    step: int | None = None
    options: dict = field(default_factory=dict)


def _int(value, param: str, lo: int = INT64[0], hi: int = INT64[1]) -> int:
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ApiError(param, f"{value!r} is not an integer")
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(param, f"{value!r} is not an integer") from None
    if not lo <= out <= hi:
        raise ApiError(param, f"{out} is out of range; expected {lo} <= {param} <= {hi}")
    return out


def _float(value, param: str, lo: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(param, f"{value!r} is not a number") from None
    if not math.isfinite(out) or out < lo:
        raise ApiError(param, f"{out} must be finite and >= {lo:g}")
    return out


def _array(value, param: str, what: str) -> np.ndarray:
    try:
        out = np.asarray(value, np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(param, f"not a numeric array ({what}); send a JSON array of numbers with equal-length rows") from None
    if out.dtype == object or not np.isfinite(out).all():
        raise ApiError(param, f"must hold finite numbers only ({what})")
    return out


def _text(form, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(name, "must be a form field, not a file")
    return value


def decode_media(data: bytes, max_frames: int, param: str = "input_reference") -> np.ndarray:
    """An MP4 or an image (PNG, JPEG, ...) -> (T, H, W, 3) uint8 RGB: the first `max_frames` frames (vLLM-Omni
    keeps the first frames of a reference video), each at most MAX_SIDE a side."""
    if not data:
        raise ApiError(param, "is empty; send an MP4 or an image")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is not None:
        frames = img[None, :, :, ::-1].copy()
    else:
        try:
            with av.open(io.BytesIO(data)) as container:
                frames = []
                for frame in container.decode(video=0):
                    if frame.width > MAX_SIDE or frame.height > MAX_SIDE:
                        raise ApiError(param, f"frames of {frame.width}x{frame.height}; at most {MAX_SIDE} a side")
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) >= max_frames:
                        break
        except ApiError:
            raise
        except Exception as e:  # noqa: BLE001 (PyAV raises many kinds)
            raise ApiError(param, f"is neither a readable MP4 nor an image ({type(e).__name__})") from None
        if not frames:
            raise ApiError(param, "holds no frame")
        frames = np.stack(frames)
    if max(frames.shape[1:3]) > MAX_SIDE:
        raise ApiError(param, f"frames of {frames.shape[2]}x{frames.shape[1]}; at most {MAX_SIDE} a side")
    return frames


def resolve_domain(extra: dict, served_name: str | None, served_id: int | None, aliases: tuple[str, ...]) -> None:
    """vLLM-Omni's resolve_domain_id (domain_id first, then domain_name), against the one domain served."""
    if extra.get("domain_id") is not None:
        did = _int(extra["domain_id"], "extra_params.domain_id", 0)
        if served_id is not None and did != served_id:
            raise ApiError("extra_params.domain_id", f"{did}; this model serves Cosmos 3 domain {served_id} "
                           f"({served_name!r})")
        return
    name = extra.get("domain_name")
    if name is None or str(name).strip() == "":
        return
    key = str(name).strip().lower()
    if key not in aliases:
        raise ApiError("extra_params.domain_name", f"{name!r}; this model serves {served_name!r}"
                       + (f" (domain_id {served_id})" if served_id is not None else ""))


def parse(form, *, served_dims: int, served_layouts: tuple[str, ...], max_num_frames: int) -> VideoRequest:
    """The form's fields, checked (no file is read here; see `read_reference`)."""
    model = _text(form, "model")
    prompt = _text(form, "prompt") or ""
    size_s = _text(form, "size")
    size = None
    if size_s is not None:
        if not SIZE.match(size_s):
            raise ApiError("size", f"{size_s!r} does not match ^\\d+x\\d+$; write WIDTHxHEIGHT, e.g. 96x96")
        w, h = (int(v) for v in size_s.split("x"))
        if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
            raise ApiError("size", f"{size_s}: each side must be 1..{MAX_SIDE}")
        size = (w, h)
    fps = _text(form, "fps")
    fps = None if fps is None else _float(fps, "fps", 1.0)
    seed = _text(form, "seed")
    seed = 0 if seed is None else _int(seed, "seed")
    # accepted and range-checked as vLLM-Omni does; a learned simulator ignores them
    if _text(form, "num_inference_steps") is not None:
        _int(_text(form, "num_inference_steps"), "num_inference_steps", 1, 200)
    for name in ("guidance_scale", "flow_shift", "true_cfg_scale"):
        if _text(form, name) is not None:
            _float(_text(form, name), name, -math.inf)
    raw_extra = _text(form, "extra_params")
    try:
        extra = {} if raw_extra is None else json.loads(raw_extra)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ApiError("extra_params", f"not JSON ({e}); send a JSON object") from None
    if not isinstance(extra, dict):
        raise ApiError("extra_params", f"is a JSON {type(extra).__name__}; send a JSON object")
    mode = extra.get("action_mode")
    mode = None if mode is None else str(mode).strip().lower()
    if mode not in MODES:
        raise ApiError("extra_params.action_mode", f"{extra.get('action_mode')!r}; a learned simulator serves "
                       f"action requests: one of {list(MODES)}")
    nf = _text(form, "num_frames")
    chunk_given = extra.get("action_chunk_size")
    if nf is None:
        num_frames = (_int(chunk_given, "extra_params.action_chunk_size", 1, max_num_frames - 1) + 1
                      if chunk_given is not None else 2)
    else:
        num_frames = _int(nf, "num_frames", 1, max_num_frames)
    chunk = num_frames - 1 if chunk_given is None else _int(chunk_given, "extra_params.action_chunk_size", 1)
    if chunk not in (num_frames, num_frames - 1) or chunk < 1:
        raise ApiError("extra_params.action_chunk_size", f"{chunk} with num_frames={num_frames}; it must equal "
                       "num_frames or num_frames - 1 (and be >= 1)")
    layout = extra.get("action_space")
    if layout is not None and str(layout).strip().lower() not in served_layouts:
        raise ApiError("extra_params.action_space", f"{layout!r}; this model's action layout is "
                       f"{served_layouts[0]!r} (vLLM-Omni's action_space names the layout; the scale of our "
                       "extension is extra_params.action_scale)")
    if extra.get("action_scale", "raw") not in ("raw", "model"):
        raise ApiError("extra_params.action_scale", f"{extra['action_scale']!r}; 'raw' (physical units) or "
                       "'model' (the spec's limits mapped to [-1, 1])")
    raw_dim = extra.get("raw_action_dim")
    raw_dim = None if raw_dim is None else _int(raw_dim, "extra_params.raw_action_dim", 1)
    if raw_dim is not None and raw_dim > served_dims:
        raise ApiError("extra_params.raw_action_dim", f"{raw_dim} exceeds this model's action width {served_dims}")
    req = VideoRequest(model, prompt, mode, num_frames, chunk, fps, seed, size, extra)
    if mode == "forward_dynamics":
        if extra.get("action") is None:
            raise ApiError("extra_params.action", "forward_dynamics needs the action: a JSON array "
                           "[action_chunk_size, raw_action_dim]")
        action = _array(extra["action"], "extra_params.action", "[T, D] or [1, T, D]")
        if action.ndim == 3 and action.shape[0] == 1:
            action = action[0]
        if action.ndim != 2 or action.shape[0] != chunk:
            raise ApiError("extra_params.action", f"shape {list(action.shape)}; expected [{chunk}, D] "
                           "([action_chunk_size, raw_action_dim])")
        if action.shape[1] > served_dims or (raw_dim is not None and action.shape[1] != raw_dim):
            raise ApiError("extra_params.action", f"has {action.shape[1]} dims; this model takes {served_dims}"
                           + (f" and raw_action_dim says {raw_dim}" if raw_dim is not None else ""))
        # action.py pad_action_to_dim: a narrower action is zero-padded to the model's width
        req.action = np.pad(action, ((0, 0), (0, served_dims - action.shape[1])))
    if extra.get("state") is not None:
        state = _array(extra["state"], "extra_params.state", "[T, S] or [S]")
        req.state = state[None] if state.ndim == 1 else state
        if req.state.ndim != 2:
            raise ApiError("extra_params.state", f"shape {list(state.shape)}; expected [T, S] or [S]")
    if extra.get("session_id") is not None:
        req.session = str(extra["session_id"])
    if extra.get("step") is not None:
        req.step = _int(extra["step"], "extra_params.step", 0)
    if extra.get("deterministic_seed") is not None:
        req.seed = _int(extra["deterministic_seed"], "extra_params.deterministic_seed")
    return req


async def read_reference(form, max_bytes: int, max_frames: int) -> np.ndarray | None:
    """The `input_reference` upload, decoded, or None; refused past `max_bytes`."""
    upload = form.get("input_reference")
    if upload is None:
        return None
    if isinstance(upload, str):
        raise ApiError("input_reference", "must be a file upload (an MP4 or an image)")
    chunks, total = [], 0
    while chunk := await upload.read(1 << 20):
        total += len(chunk)
        if total > max_bytes:
            raise ApiError("input_reference", f"exceeds the {max_bytes / 2**20:g} MiB upload limit "
                           "(server option --max-upload-mb)", 413)
        chunks.append(chunk)
    return await asyncio.to_thread(decode_media, b"".join(chunks), max_frames)  # off the event loop
