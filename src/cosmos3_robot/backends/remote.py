"""A `Backend` that drives a served world model over HTTP (httpx): `cosmos3-robot serve`, or a Cosmos 3
served by vLLM-Omni, through the forward-dynamics part of its video API (`POST /v1/videos/sync` with
`extra_params.action_mode = "forward_dynamics"`; see `cosmos3_robot.serve.video_api` for the fields and
this project's session extension).

Against `cosmos3-robot serve` (it describes itself on GET /v1/models) the session lives on the server: the
first step of a session sends the context frames, later steps only the action; the reply's headers carry the
predicted robot state, reward and success. Against a plain vLLM-Omni server (`stateless=True`, or no
description), every step sends the last `history` frames as `input_reference`; the state is carried
over and the reward is 0 (a video model predicts frames only).

Errors name the URL and the field: an unreachable server, a timeout, a 4xx/5xx with the server's detail, a
reply of the wrong shape. A failed step leaves the sessions as they were, so the same step can be retried."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from ..datasets.video import frames_from_mp4, mp4_bytes
from ..embodiments import EmbodimentSpec, load_spec
from .base import Context, Prediction, Session, session_seeds

HEADERS = {k: f"x-cosmos3-robot-{k}" for k in ("state", "reward", "success", "info")}


def model_scale(spec: EmbodimentSpec) -> tuple[np.ndarray, np.ndarray]:
    """The "model" action space: the spec's limits mapped to [-1, 1] (mid, half-range per dim)."""
    lo, hi = np.asarray(spec.action.lower, np.float64), np.asarray(spec.action.upper, np.float64)
    return (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-12)


def to_model(spec: EmbodimentSpec, actions: np.ndarray) -> np.ndarray:
    mid, half = model_scale(spec)
    return (np.asarray(actions, np.float64) - mid) / half


def from_model(spec: EmbodimentSpec, actions: np.ndarray) -> np.ndarray:
    mid, half = model_scale(spec)
    return np.asarray(actions, np.float64) * half + mid


def split_views(spec: EmbodimentSpec, video: np.ndarray, cameras: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One video (T, H, W, 3) -> camera -> frames: the camera itself, or the spec's concat layout."""
    if len(cameras) == 1:
        return {cameras[0]: video}
    from ..embodiments import ConcatLayout

    layout = ConcatLayout.from_spec(spec)
    return {c: np.stack([layout.split(f)[c] for f in video]) for c in cameras}


def join_views(spec: EmbodimentSpec, frames: dict[str, np.ndarray], cameras: tuple[str, ...]) -> np.ndarray:
    if len(cameras) == 1:
        return frames[cameras[0]]
    from ..embodiments import ConcatLayout

    layout = ConcatLayout.from_spec(spec)
    return np.stack([layout.compose({c: frames[c][t] for c in cameras}) for t in range(len(frames[cameras[0]]))])


class RemoteError(RuntimeError):
    """A served model failed a request; the message names the URL and the field."""


class RemoteBackend:
    def __init__(self, url: str, spec: EmbodimentSpec | str | None = None, model: str | None = None,
                 domain_name: str | None = None, action_space: str = "raw", timeout: float = 60.0,
                 stateless: bool | None = None, history: int | None = None, success_threshold: float | None = None,
                 prompt: str | None = None, workers: int = 8):
        if action_space not in ("raw", "model"):
            raise ValueError(f"action_space={action_space!r}; 'raw' (the server scales) or 'model' (we send [-1, 1])")
        self.url, self.action_space, self.timeout = url.rstrip("/"), action_space, float(timeout)
        self.client = httpx.Client(base_url=self.url, timeout=self.timeout)
        described = self._describe()
        info = (described or {}).get("cosmos3_robot", {})
        spec = spec or info.get("embodiment")
        if spec is None:
            raise ValueError(f"{self.url} does not say which embodiment it serves; pass spec= (e.g. 'droid')")
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.model = model or (described or {}).get("id")
        if self.model is None:
            raise ValueError(f"{self.url}/v1/models lists no model; pass model=")
        self.cameras = tuple(info.get("cameras", [c.name for c in self.spec.cameras]))
        self.history = int(history or info.get("history", 2))
        self.success_threshold = float(success_threshold if success_threshold is not None
                                       else info.get("success_threshold", 1.0))
        self.domain_name = domain_name or self.spec.name
        self.stateless = (not info) if stateless is None else bool(stateless)
        self.prompt = prompt
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers))

    # ------------------------------------------------------------------ HTTP

    def _where(self, path: str) -> str:
        return f"{self.url}{path}"

    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            res = self.client.request(method, path, **kw)
        except httpx.TimeoutException as e:
            raise TimeoutError(f"{self._where(path)}: no reply within {self.timeout:g} s (timeout=); is the "
                               "server busy or the model slow?") from e
        except httpx.TransportError as e:
            raise ConnectionError(f"{self._where(path)}: cannot reach the server ({e}); start it with "
                                  "`cosmos3-robot serve --checkpoint CKPT --port P` or check the URL") from e
        if res.status_code >= 400:
            try:
                detail = res.json().get("detail", res.text)
            except ValueError:
                detail = res.text
            if isinstance(detail, dict) and "field" in detail:
                detail = f"field {detail['field']}: {detail.get('error')}"
            raise RemoteError(f"{self._where(path)} answered {res.status_code}: {detail}")
        return res

    def _describe(self) -> dict | None:
        data = self._request("GET", "/v1/models").json().get("data") or []
        return data[0] if data else None

    # ------------------------------------------------------------------ Backend

    def reset(self, ctx: Context, seed=None) -> Session:
        B = ctx.batch
        frames = {c: np.asarray(ctx.frames[c]) for c in self.cameras}
        per_session = np.empty(B, dtype=object)  # camera -> (history, H, W, 3) per session
        per_session[:] = [{c: frames[c][b].copy() for c in self.cameras} for b in range(B)]
        return Session({"session_id": np.array([uuid.uuid4().hex for _ in range(B)], dtype=object),
                        "frames": per_session,
                        "state": np.asarray(ctx.state, np.float64).copy(),
                        "steps": np.zeros(B, np.int64), "seed": session_seeds(seed, B)},
                       instruction=ctx.instruction)

    def _one(self, session: Session, b: int, action: np.ndarray, prompt: str) -> dict:
        """One step of session b -> its new frames, state, reward, success, info (sessions untouched)."""
        data = session.data
        sent = to_model(self.spec, action[None]) if self.action_space == "model" else np.asarray(action, np.float64)[None]
        extra = {"action_mode": "forward_dynamics", "domain_name": self.domain_name,
                 "raw_action_dim": self.spec.action_dims, "action_chunk_size": 1,
                 "action": sent.tolist(), "action_space": self.action_space,
                 "deterministic_seed": int(data["seed"][b])}
        files = None
        if not self.stateless:
            extra["session_id"], extra["step"] = str(data["session_id"][b]), int(data["steps"][b])
        if self.stateless or data["steps"][b] == 0:  # a session's first step sends its context
            context = data["frames"][b]
            video = join_views(self.spec, context, self.cameras)
            extra["state"] = np.asarray(data["state"][b], np.float64).tolist()
            files = {"input_reference": ("context.mp4", mp4_bytes(video, self.spec.video_fps), "video/mp4")}
        form = {"model": self.model, "prompt": prompt, "num_frames": "2", "fps": str(self.spec.video_fps),
                "seed": str(int(data["seed"][b])), "extra_params": json.dumps(extra)}
        res = self._request("POST", "/v1/videos/sync", data=form, files=files, headers={"Accept": "video/mp4"})
        try:
            video = frames_from_mp4(res.content)
        except Exception as e:  # noqa: BLE001
            raise RemoteError(f"{self._where('/v1/videos/sync')}: the reply is not a readable MP4 ({e})") from e
        views = split_views(self.spec, video, self.cameras)
        out = {"frames": {c: v[-1] for c, v in views.items()}}
        for c, f in out["frames"].items():
            cam = self.spec.camera(c)
            if f.shape != (cam.height, cam.width, 3):
                raise RemoteError(f"{self._where('/v1/videos/sync')}: camera {c!r} came back {f.shape}, the spec "
                                  f"says ({cam.height}, {cam.width}, 3)")
        state = json.loads(res.headers.get(HEADERS["state"], "null"))
        if state is None:
            out["state"] = np.asarray(data["state"][b][-1], np.float64)
        else:
            out["state"] = np.asarray(state[-1], np.float64)
            if out["state"].shape != (self.spec.state.dims,):
                raise RemoteError(f"{self._where('/v1/videos/sync')}: header {HEADERS['state']} holds a state of "
                                  f"shape {out['state'].shape}, expected ({self.spec.state.dims},)")
        out["reward"] = float(json.loads(res.headers.get(HEADERS["reward"], "[0.0]"))[-1])
        out["success"] = bool(json.loads(res.headers.get(HEADERS["success"], "[false]"))[-1])
        out["info"] = json.loads(res.headers.get(HEADERS["info"], "[{}]"))[-1]
        return out

    def step(self, session: Session, actions: np.ndarray) -> Prediction:
        actions = np.asarray(actions, np.float64)
        B = len(session)
        if actions.shape != (B, self.spec.action_dims):
            raise ValueError(f"actions have shape {actions.shape}; expected ({B}, {self.spec.action_dims})")
        prompt = session.instruction or self.prompt or self.spec.task
        outs = list(self.pool.map(lambda b: self._one(session, b, actions[b], prompt), range(B)))
        data = session.data  # every request succeeded: now the sessions move on
        for b, o in enumerate(outs):
            ctx = data["frames"][b]
            data["frames"][b] = {c: np.concatenate([ctx[c][1:], o["frames"][c][None]])[-self.history:]
                                 for c in self.cameras}
            data["state"][b] = np.concatenate([data["state"][b][1:], o["state"][None]])
            data["steps"][b] += 1
        keys = sorted({k for o in outs for k in o["info"]})
        return Prediction(frames={c: np.stack([o["frames"][c] for o in outs]) for c in self.cameras},
                          state=np.stack([o["state"] for o in outs]).astype(np.float32),
                          reward=np.array([o["reward"] for o in outs]),
                          success=np.array([o["success"] for o in outs], bool),
                          info={k: np.array([o["info"].get(k, np.nan) for o in outs]) for k in keys})

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.client.close()

    @classmethod
    def load(cls, url, **kwargs) -> RemoteBackend:
        return cls(str(url), **kwargs)
