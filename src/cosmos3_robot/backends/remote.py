"""A `Backend` that drives a served world model over HTTP (httpx), through vLLM-Omni's Cosmos 3 video API
(forward dynamics: `POST /v1/videos/sync`, `extra_params.action_mode = "forward_dynamics"`).

Two ways, chosen by what GET /v1/models says (or `stateless=`):
- **stateless**, for a plain vLLM-Omni serving Cosmos 3 (vllm-omni 0.30.0). Each request sends the env's last
  frame as the condition (`input_reference`, a lossless PNG; Cosmos 3 conditions forward dynamics on the first
  latent frame only: `action.py` `vision_condition_indexes` -> [0]) and the action chunk, `num_frames` =
  chunk + 1 with the chunk a multiple of the VAE's temporal compression (4: `cosmos3/utils.py`
  `COSMOS3_VAE_TEMPORAL_COMPRESSION`; a shorter chunk is padded by holding its last action and the extra frames
  dropped), `size` = the frames' layout, `domain_name` = the spec's Cosmos 3 domain, `raw_action_dim` and the
  action in the layout Cosmos 3 takes there (`[cosmos3]` in the spec; the env's action space is that layout, so
  nothing is converted or scaled here). The reply is resized to the spec's cameras. A video model predicts
  frames only: the robot state is carried over and the reward is 0.
- **stateful**, against `cosmos3-robot serve`: the session lives on the server (its id issued there), the first
  request sends the context frames and state, later ones only the actions; the state, reward and success come
  back per frame. Two or more started sessions (a vector env) step in one request to the server's extension
  `/v1/sessions/step`, whose frames come back as raw bytes to a server on this host (`frames="auto"`) or as one
  lossless MP4; the server steps the sessions of all waiting requests in one model call.

`step_chunk` sends a whole action chunk in one request (the env's `step` with a (T, A) chunk uses it): users trade
latency against open-loop drift by the chunk length. Errors name the URL and the field. A failed step leaves the
sessions as they were, so the same step can be retried."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np

from ..datasets.video import frames_from_mp4, mp4_bytes, resize_to
from ..embodiments import EmbodimentSpec, load_spec
from ..errors import Unreachable
from .base import Context, Prediction, Session, pad_history, session_seeds
from ..errors import UserError

HEADERS = {k: f"x-cosmos3-robot-{k}" for k in ("state", "reward", "success", "info", "steps", "session", "json-bytes")}
TEMPORAL_COMPRESSION = 4  # vllm-omni 0.30.0 cosmos3/utils.py COSMOS3_VAE_TEMPORAL_COMPRESSION


def model_scale(vec) -> tuple[np.ndarray, np.ndarray]:
    """The "model" action scale of an action variant (a `VectorSpec`): its limits mapped to [-1, 1]."""
    lo, hi = np.asarray(vec.lower, np.float64), np.asarray(vec.upper, np.float64)
    return (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-12)


def to_model(vec, actions: np.ndarray) -> np.ndarray:
    mid, half = model_scale(vec)
    return (np.asarray(actions, np.float64) - mid) / half


def from_model(vec, actions: np.ndarray) -> np.ndarray:
    mid, half = model_scale(vec)
    return np.asarray(actions, np.float64) * half + mid


def _layout(spec: EmbodimentSpec, cameras: tuple[str, ...]):
    from ..embodiments import ConcatLayout

    return None if len(cameras) == 1 else ConcatLayout.from_spec(spec)


def layout_size(spec: EmbodimentSpec, cameras: tuple[str, ...]) -> tuple[int, int]:
    """(width, height) of the video that carries `cameras`: the camera itself, or the spec's concat layout."""
    layout = _layout(spec, cameras)
    cam = spec.camera(cameras[0])
    return (cam.width, cam.height) if layout is None else (layout.width, layout.height)


def split_views(spec: EmbodimentSpec, video: np.ndarray, cameras: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One video (T, H, W, 3) of any size -> camera -> (T, h, w, 3) at each camera's size: resized to the layout
    first (a video of another size is resized, never tiled), then split."""
    width, height = layout_size(spec, cameras)
    video = resize_to(np.asarray(video, np.uint8), height, width)
    layout = _layout(spec, cameras)
    if layout is None:
        return {cameras[0]: video}
    out = {}
    for c in cameras:
        cam = spec.camera(c)
        out[c] = resize_to(np.stack([layout.split(f)[c] for f in video]), cam.height, cam.width)
    return out


def join_views(spec: EmbodimentSpec, frames: dict[str, np.ndarray], cameras: tuple[str, ...]) -> np.ndarray:
    """camera -> (T, H, W, 3) -> one video (T, height, width, 3) in the spec's layout."""
    layout = _layout(spec, cameras)
    if layout is None:
        return np.asarray(frames[cameras[0]])
    return np.stack([layout.compose({c: frames[c][t] for c in cameras}) for t in range(len(frames[cameras[0]]))])


class RemoteError(RuntimeError):
    """A served model failed a request; the message names the URL and the field."""


class RemoteBackend:
    def __init__(self, url: str, spec: EmbodimentSpec | str | None = None, model: str | None = None,
                 domain_name: str | None = None, action_scale: str = "raw", timeout: float = 60.0,
                 stateless: bool | None = None, history: int | None = None, success_threshold: float | None = None,
                 prompt: str | None = None, workers: int = 8, api_key: str | None = None,
                 num_inference_steps: int | None = None, frames: str = "auto"):
        if frames not in ("auto", "mp4", "raw"):
            raise UserError(f"frames={frames!r}; 'mp4', 'raw' or 'auto' (raw to a server on this host)")
        if action_scale not in ("raw", "model"):
            raise UserError(f"action_scale={action_scale!r}; 'raw' (the server scales) or 'model' (we send [-1, 1])")
        self.url, self.action_scale, self.timeout = url.rstrip("/"), action_scale, float(timeout)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.url, timeout=self.timeout, headers=headers)
        described = self._describe()
        info = (described or {}).get("cosmos3_robot", {})
        spec = spec or info.get("embodiment")
        if spec is None:
            raise UserError(f"{self.url} does not say which embodiment it serves; pass spec= (e.g. 'droid')")
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.model = model or (described or {}).get("id")
        self.ours = bool(info)  # `cosmos3-robot serve` describes itself; a plain vLLM-Omni does not
        self.stateless = (not info) if stateless is None else bool(stateless)
        if self.stateless:
            self.domain_name = domain_name or self.spec.cosmos3_domain
            if self.domain_name is None:
                raise UserError(f"embodiment {self.spec.name!r} names no Cosmos 3 domain ([cosmos3] domain_name in "
                                 "its spec); pass domain_name= (a key of vLLM-Omni's EMBODIMENT_TO_DOMAIN_ID)")
            self.action_variant = self.spec.cosmos3_action or self.spec.default_action
        else:
            self.domain_name = domain_name or info.get("domain_name")
            self.action_variant = info.get("action_space", self.spec.default_action)
        self.action = self.spec.action_variant(self.action_variant)
        self.cameras = tuple(info.get("cameras", [c.name for c in self.spec.cameras]))
        self.size = "{}x{}".format(*layout_size(self.spec, self.cameras))
        # Cosmos 3 conditions forward dynamics on one frame; our server on its backend's history
        self.history = int(history or (1 if self.stateless else info.get("history", 2)))
        self.success_threshold = float(success_threshold if success_threshold is not None
                                       else info.get("success_threshold", 1.0))
        self.prompt, self.num_inference_steps = prompt, num_inference_steps
        # our server steps many started sessions in one request (its /v1/sessions/step); others one per request
        self.session_step = None if self.stateless else info.get("session_step")
        self.max_frames = int(info.get("max_num_frames", 1025))
        # frames of many sessions: raw bytes to a server on this host (no coding either side), else lossless MP4
        self.frames = ("raw" if httpx.URL(self.url).host in ("127.0.0.1", "localhost", "::1") else "mp4") \
            if frames == "auto" else frames
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
            raise Unreachable(f"{self._where(path)}: cannot reach the server ({e}); start it with "
                                  "`cosmos3-robot serve --checkpoint CKPT --port P` or check the URL") from e
        if res.status_code >= 400:
            try:
                body = res.json()
                detail = body.get("error", {}).get("message") or body.get("detail") or res.text
            except (ValueError, AttributeError):
                detail = res.text
            raise RemoteError(f"{self._where(path)} answered {res.status_code}: {detail}")
        return res

    def _describe(self) -> dict | None:
        data = self._request("GET", "/v1/models").json().get("data") or []
        return data[0] if data else None

    # ------------------------------------------------------------------ Backend

    def reset(self, ctx: Context, seed=None) -> Session:
        B = ctx.batch
        per_session = np.empty(B, dtype=object)  # camera -> (history, H, W, 3) per session
        per_session[:] = [{c: np.asarray(ctx.frames[c][b][-self.history:]).copy() for c in self.cameras}
                          for b in range(B)]
        sids = np.empty(B, dtype=object)
        sids[:] = [None] * B
        return Session({"session_id": sids, "frames": per_session,
                        "state": pad_history(np.asarray(ctx.state, np.float64), self.history).copy(),
                        "steps": np.zeros(B, np.int64), "seed": session_seeds(seed, B)},
                       instruction=ctx.instruction)

    def _form(self, session: Session, b: int, actions: np.ndarray, prompt: str) -> tuple[dict, dict, int]:
        """The request for session b's chunk (T, A) -> form fields, files, and the frames to skip in the reply."""
        data, T = session.data, len(actions)
        sent = to_model(self.action, actions) if self.action_scale == "model" else np.asarray(actions, np.float64)
        extra = {"action_mode": "forward_dynamics", "raw_action_dim": self.action.dims}
        if self.domain_name:
            extra["domain_name"] = self.domain_name
        files = None
        if self.stateless:
            padded = -(-T // TEMPORAL_COMPRESSION) * TEMPORAL_COMPRESSION
            sent = np.concatenate([sent, np.repeat(sent[-1:], padded - T, 0)])
            last = join_views(self.spec, {c: f[-1:] for c, f in data["frames"][b].items()}, self.cameras)[0]
            png = cv2.imencode(".png", np.ascontiguousarray(last[:, :, ::-1]))[1].tobytes()
            files = {"input_reference": ("frame.png", png, "image/png")}
            if self.ours:  # our server takes the state beside the frame (a Cosmos 3 gets only vLLM-Omni's fields)
                extra["state"] = [np.asarray(data["state"][b][-1], np.float64).tolist()]
        else:
            extra["action_scale"] = self.action_scale
            if data["session_id"][b] is None:  # a session's first request sends its context
                extra["session_id"] = "new"
                extra["state"] = np.asarray(data["state"][b], np.float64).tolist()
                video = join_views(self.spec, data["frames"][b], self.cameras)
                files = {"input_reference": ("context.mp4", mp4_bytes(video, self.spec.video_fps), "video/mp4")}
            else:
                extra["session_id"], extra["step"] = str(data["session_id"][b]), int(data["steps"][b])
            extra["deterministic_seed"] = int(data["seed"][b])
        extra["action_chunk_size"] = len(sent)
        extra["action"] = sent.tolist()
        form = {"prompt": prompt, "size": self.size, "num_frames": str(len(sent) + 1),
                "fps": str(max(1.0, self.spec.video_fps)), "seed": str(int(data["seed"][b])),
                "extra_params": json.dumps(extra)}
        if self.model:
            form["model"] = self.model
        if self.num_inference_steps:
            form["num_inference_steps"] = str(self.num_inference_steps)
        return form, files, 1  # the video opens with the conditioning frame (chunk = num_frames - 1)

    def _one(self, session: Session, b: int, actions: np.ndarray, prompt: str) -> dict:
        """Session b's chunk (T, A) -> its T new frames, states, rewards, successes, infos (sessions untouched)."""
        where = self._where("/v1/videos/sync")
        form, files, skip = self._form(session, b, actions, prompt)
        res = self._request("POST", "/v1/videos/sync", data=form, files=files, headers={"Accept": "video/mp4"})
        try:
            video = frames_from_mp4(res.content)
        except Exception as e:  # noqa: BLE001
            raise RemoteError(f"{where}: the reply is not a readable MP4 ({e})") from e
        T = len(actions)
        if len(video) < skip + T:
            raise RemoteError(f"{where}: the reply has {len(video)} frames; expected at least {skip + T}")
        views = split_views(self.spec, video[skip: skip + T], self.cameras)
        out = {"frames": views, "session_id": res.headers.get(HEADERS["session"], session.data["session_id"][b])}
        if self.stateless or HEADERS["state"] not in res.headers:  # a video model predicts frames only
            out["records"] = [{"state": session.data["state"][b][-1], "reward": 0.0, "success": False, "info": {}}] * T
        elif T == 1:
            out["records"] = [{"state": json.loads(res.headers[HEADERS["state"]]),
                               "reward": json.loads(res.headers[HEADERS["reward"]]),
                               "success": json.loads(res.headers[HEADERS["success"]]),
                               "info": json.loads(res.headers.get(HEADERS["info"], "{}"))}]
        else:
            out["records"] = self._request("GET", f"/v1/sessions/{out['session_id']}").json()["frames"]
        self._check_records(where, out["records"])
        return out

    def _check_records(self, where: str, records: list[dict]) -> None:
        for r in records:
            r["state"] = np.asarray(r["state"], np.float64)
            if r["state"].shape != (self.spec.state.dims,):
                raise RemoteError(f"{where}: the server sent a state of shape {r['state'].shape}, expected "
                                  f"({self.spec.state.dims},)")

    def _many(self, session: Session, idx: list[int], actions: np.ndarray) -> list[dict]:
        """Started sessions `idx`, chunks (len(idx), T, A) -> per session what `_one` gives, in one request to our
        server's /v1/sessions/step (sessions untouched)."""
        where, data, T = self._where(self.session_step), session.data, actions.shape[1]
        body = {"action_scale": self.action_scale, "frames": self.frames, "sessions": [
            {"id": str(data["session_id"][b]), "step": int(data["steps"][b]),
             "action": (to_model(self.action, a) if self.action_scale == "model" else a).tolist()}
            for b, a in zip(idx, actions)]}
        if self.model:
            body["model"] = self.model
        res = self._request("POST", self.session_step, json=body)
        try:
            n = int(res.headers[HEADERS["json-bytes"]])
            payload, sent = json.loads(res.content[:n]), res.content[n:]
            video = frames_from_mp4(sent) if payload.get("frames", "mp4") == "mp4" else \
                np.frombuffer(sent, np.uint8).reshape([int(n) for n in payload["shape"]])
        except Exception as e:  # noqa: BLE001
            raise RemoteError(f"{where}: the reply is not a JSON record and frames ({type(e).__name__}: {e})") from e
        if len(video) != len(idx) * T or len(payload.get("sessions", [])) != len(idx):
            raise RemoteError(f"{where}: the reply has {len(video)} frames for {len(payload.get('sessions', []))} "
                              f"sessions; expected {len(idx) * T} for {len(idx)}")
        outs = []
        for k, (b, got) in enumerate(zip(idx, payload["sessions"])):
            if got.get("id") != data["session_id"][b] or len(got.get("frames", [])) != T:
                raise RemoteError(f"{where}: the reply's sessions[{k}] is not session {b}'s {T} frames")
            self._check_records(where, got["frames"])
            outs.append({"frames": split_views(self.spec, video[k * T:(k + 1) * T], self.cameras),
                         "session_id": got["id"], "records": got["frames"]})
        return outs

    def step_chunk(self, session: Session, actions: np.ndarray) -> list[Prediction]:
        """(B, T, A) actions -> T predictions: two or more started sessions in one request to our server's
        /v1/sessions/step (as many as its max_num_frames allows per request), others one request per session."""
        actions = np.asarray(actions, np.float64)
        B = len(session)
        if actions.ndim != 3 or actions.shape[0] != B or actions.shape[2] != self.action.dims:
            raise UserError(f"actions have shape {actions.shape}; expected ({B}, T, {self.action.dims}) "
                             f"({self.action_variant})")
        prompt = session.instruction or self.prompt or self.spec.task
        started = [b for b in range(B) if self.session_step and session.data["session_id"][b] is not None]
        started = started if len(started) > 1 else []  # one session: the plain vLLM-Omni-shaped request
        per = max(1, self.max_frames // actions.shape[1])
        parts = [started[i: i + per] for i in range(0, len(started), per)]
        singles = {b: self.pool.submit(self._one, session, b, actions[b], prompt)
                   for b in sorted(set(range(B)) - set(started))}
        many = [(p, self.pool.submit(self._many, session, p, actions[p])) for p in parts]
        outs = [None] * B
        for b, job in singles.items():
            outs[b] = job.result()
        for p, job in many:
            for b, o in zip(p, job.result()):
                outs[b] = o
        data = session.data  # every request succeeded: now the sessions move on
        for b, o in enumerate(outs):
            ctx = data["frames"][b]
            data["frames"][b] = {c: np.concatenate([ctx[c], o["frames"][c]])[-self.history:] for c in self.cameras}
            states = np.stack([r["state"] for r in o["records"]])
            data["state"][b] = np.concatenate([data["state"][b], states])[-self.history:]
            data["steps"][b] += 1
            data["session_id"][b] = o["session_id"]
        preds = []
        for t in range(actions.shape[1]):
            recs = [o["records"][t] for o in outs]
            keys = sorted({k for r in recs for k in r["info"]})
            preds.append(Prediction(frames={c: np.stack([o["frames"][c][t] for o in outs]) for c in self.cameras},
                                    state=np.stack([r["state"] for r in recs]).astype(np.float32),
                                    reward=np.array([float(r["reward"]) for r in recs]),
                                    success=np.array([bool(r["success"]) for r in recs]),
                                    info={k: np.array([r["info"].get(k, np.nan) for r in recs]) for k in keys}))
        return preds

    def step(self, session: Session, actions: np.ndarray) -> Prediction:
        actions = np.asarray(actions, np.float64)
        if actions.ndim != 2:
            raise UserError(f"actions have shape {actions.shape}; expected ({len(session)}, {self.action.dims})")
        return self.step_chunk(session, actions[:, None])[0]

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.client.close()

    @classmethod
    def load(cls, url, **kwargs) -> RemoteBackend:
        return cls(str(url), **kwargs)
