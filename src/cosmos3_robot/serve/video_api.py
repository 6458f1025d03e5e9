"""Any registered backend behind vLLM-Omni's Cosmos 3 video API, as a drop-in for code written against
vLLM-Omni 0.30.0 (vllm_omni/entrypoints/openai/api_server.py, protocol/videos.py, serving_video.py; the requests
of recipes/cosmos3/Cosmos3-Nano.md):

    POST /v1/videos/sync     forward dynamics: the first frame(s) (`input_reference`, an MP4 or an image) and the
                             action chunk -> the rollout video (video/mp4)
    POST /v1/videos          async job (policy; inverse dynamics where the backend has it): answers "queued" at
                             once, a worker runs it; GET /v1/videos/{id} (queued, in_progress, completed, failed;
                             `action` {data, shape, dtype, raw_action_dim, action_mode, domain_id}),
                             GET /v1/videos/{id}/content, GET /v1/videos (list), DELETE /v1/videos/{id}
    GET  /v1/models, /health

Errors are vLLM's envelope, 400 for a client error, naming the parameter (`errors.py`); every field is checked
as vLLM-Omni checks it (`video_form.py`). `--api-key` asks for `Authorization: Bearer <key>` on /v1/*, as vLLM's.

What a learned simulator needs beyond the API is an extension beside it, never instead of it:
- extra_params `session_id`: "new" (with `input_reference`) starts a server-side session; its unguessable id comes
  back in the `x-cosmos3-robot-session` header, and later requests send it with only the action. `step` (the steps
  the client has seen) makes a retried request get the reply it missed instead of stepping twice. `state` is the
  robot state of the context frames ([T, S]); a request that starts from frames without it is refused, unless the
  backend reads the state off the frames (`reads_state = True`). `action_scale` "raw" (physical units) or
  "model" (the spec's limits mapped to [-1, 1], undone here exactly once). `deterministic_seed`.
- reply headers `x-cosmos3-robot-state` / `-reward` / `-success` hold the last frame's values (bounded at any
  chunk length); `GET /v1/sessions/{id}` gives every frame of the session's last request as JSON.
- `POST /v1/sessions/step` (JSON) steps many started sessions in one request, as a vector env needs: `sessions`
  [{id, step, action [T, D]}] (one T for all), `action_scale`, `frames` "mp4" (default) or "raw". The reply's body
  is a JSON record (its length in the `x-cosmos3-robot-json-bytes` header: `frames_per_session` T, `shape`, and
  per session its `id`, `steps` and per-frame `frames` records), then the B x T new frames (session after session,
  no opening frame): one lossless MP4, or raw uint8 bytes of `shape` (no coding, for a client on the same host).
  A retry of a request just served is answered again, not stepped.
Every model step goes through one `StepBatcher`: the sessions of all requests waiting at that moment are stepped in
one backend call.
Videos are lossless H.264 RGB. Several cameras travel in the spec's concat layout (Cosmos' multi-view layout)."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from ..backends.base import Context, action_variant_of
from ..backends.remote import HEADERS, from_model, join_views, layout_size, split_views
from ..datasets.video import mp4_bytes, resize_to
from ..embodiments import EmbodimentSpec
from . import errors, video_form
from .batcher import StepBatcher
from .errors import ApiError


@dataclass
class ServeLimits:
    max_num_frames: int = 1025  # per request: frames of one video (the chunk plus its first frame)
    max_upload_mb: float = 64.0
    max_queue: int = 16  # async jobs waiting; past it a job is refused with 429
    max_sessions: int = 1024  # oldest dropped first
    max_jobs: int = 256  # finished jobs kept for GET; oldest dropped first


class Served:
    """The backend and what is known of it: its spec, cameras, Cosmos 3 domain and action layout."""

    def __init__(self, backend, name: str, policy_factory=None):
        self.backend, self.name, self.policy_factory = backend, name, policy_factory
        self.spec: EmbodimentSpec = backend.spec
        self.cameras = tuple(backend.cameras)
        variant = action_variant_of(backend) or self.spec.default_action
        self.action = self.spec.action_variant(variant)
        self.layouts = tuple(dict.fromkeys(
            [variant, *([v.replace("_position", "_pos")] if (v := variant).endswith("_position") else [])]))
        self.domain = self.spec.cosmos3_domain
        self.domain_id = self.spec.cosmos3_domain_id
        self.aliases = tuple(a for a in (self.domain, self.spec.name) if a)
        self.model_lock = threading.Lock()  # one model call at a time
        self.batcher = StepBatcher(backend, self.model_lock)  # the sessions of all waiting requests in one call

    def parse(self, form, limits: ServeLimits) -> video_form.VideoRequest:
        self.check_model(form.get("model"))
        req = video_form.parse(form, served_dims=self.action.dims, served_layouts=self.layouts,
                               max_num_frames=limits.max_num_frames)
        video_form.resolve_domain(req.extra, self.domain, self.domain_id, self.aliases)
        if req.action is not None:
            req.action = self.physical(req.action, req.extra.get("action_scale", "raw"))
        return req

    def check_model(self, model) -> None:
        if model is not None and model != self.name:
            raise ApiError("model", f"Model mismatch: request specifies {str(model)[:100]!r} but server is running "
                           f"{self.name!r} (omit model to use the served one)")

    def physical(self, action: np.ndarray, scale: str) -> np.ndarray:
        """A checked action (T, D) in `scale` -> physical units inside the limits, as the env's default clips."""
        if scale == "model":
            action = from_model(self.action, action)  # the one place a "model" action is unscaled
        return np.clip(action, self.action.lower, self.action.upper)

    def parse_batch(self, body, limits: ServeLimits) -> tuple[list[tuple[str, int | None, np.ndarray]], str]:
        """A /v1/sessions/step body -> [(session id, step or None, actions (T, A) physical units)] and the frames'
        format, every field checked (the same action rules as a single request's), before anything is stepped."""
        if not isinstance(body, dict):
            raise ApiError(None, "the body must be a JSON object with 'sessions'")
        self.check_model(body.get("model"))
        scale = body.get("action_scale", "raw")
        if scale not in ("raw", "model"):
            raise ApiError("action_scale", f"{scale!r}; 'raw' (physical units) or 'model' (the spec's limits mapped "
                           "to [-1, 1])")
        if body.get("frames", "mp4") not in ("mp4", "raw"):
            raise ApiError("frames", f"{body['frames']!r}; 'mp4' (lossless H.264, small) or 'raw' (uint8 bytes, no "
                           "coding: for a client on the same host or a fast link)")
        items = body.get("sessions")
        if not isinstance(items, list) or not items:
            raise ApiError("sessions", "must be a non-empty list of {\"id\", \"step\", \"action\"}")
        out, seen, chunk = [], set(), None
        for i, item in enumerate(items):
            where = f"sessions[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise ApiError(f"{where}.id", "missing: each entry is {\"id\": session id, \"step\", \"action\"}")
            if item["id"] in seen:
                raise ApiError(f"{where}.id", "repeats an earlier entry; step a session once per request")
            seen.add(item["id"])
            step = None if item.get("step") is None else video_form._int(item["step"], f"{where}.step", 0)
            action = video_form._array(item.get("action"), f"{where}.action", "[T, D]")
            if action.ndim != 2 or not 1 <= action.shape[1] <= self.action.dims or len(action) < 1:
                raise ApiError(f"{where}.action", f"shape {list(action.shape)}; expected [T, D] with D <= "
                               f"{self.action.dims} ({self.layouts[0]})")
            if chunk is not None and len(action) != chunk:
                raise ApiError(f"{where}.action", f"{len(action)} steps; every session of a request takes the same "
                               f"number ({chunk})")
            chunk = len(action)
            action = np.pad(action, ((0, 0), (0, self.action.dims - action.shape[1])))
            out.append((item["id"], step, self.physical(action, scale)))
        if len(out) * chunk > limits.max_num_frames:
            raise ApiError("sessions", f"{len(out)} sessions x {chunk} steps = {len(out) * chunk} frames; this "
                           f"server answers at most {limits.max_num_frames} per request (--max-num-frames): split it")
        return out, body.get("frames", "mp4")

    def context(self, req: video_form.VideoRequest, clip: bool = False) -> Context:
        """The request's frames (resized to the cameras; the first `history` of them, as vLLM-Omni keeps the
        first frames of a reference, or all of them for a `clip`) and state -> a batch-1 Context."""
        frames = req.frames if clip else req.frames[: self.backend.history]
        T = len(frames)
        views = split_views(self.spec, frames, self.cameras)
        if req.state is None:
            if not getattr(self.backend, "reads_state", False):
                raise ApiError("extra_params.state", f"missing: this model needs the robot state of the context "
                               f"frames, [T, {self.spec.state.dims}] in physical units (it does not read the state "
                               "off the frames)")
            try:
                state = np.asarray(self.backend.read_state(views), np.float64).reshape(T, self.spec.state.dims)
            except ValueError as e:
                raise ApiError("extra_params.state", f"missing, and it could not be read off the frames ({e}); "
                               f"send it: [T, {self.spec.state.dims}] in physical units") from None
        else:
            if req.state.shape[1] != self.spec.state.dims:
                raise ApiError("extra_params.state", f"shape {list(req.state.shape)}; expected [T, "
                               f"{self.spec.state.dims}] for {self.spec.name!r}")
            if clip and len(req.state) != T:
                raise ApiError("extra_params.state", f"{len(req.state)} rows for a clip of {T} frames; send one "
                               "state per frame")
            state = req.state[:T] if len(req.state) >= T else np.repeat(req.state[-1:], T, 0)
        return Context({c: v[None] for c, v in views.items()}, state[None], req.prompt or None)

    def video(self, views: dict[str, np.ndarray], req: video_form.VideoRequest) -> bytes:
        video = join_views(self.spec, views, self.cameras)
        if req.size is not None:
            video = resize_to(video, req.size[1], req.size[0])
        return mp4_bytes(video, req.fps or self.spec.video_fps)

    def roll(self, session, actions: np.ndarray, cancelled=lambda: False) -> tuple[dict, list[dict]]:
        """Step the session through `actions` -> camera -> (T, H, W, 3) frames and per-frame records."""
        return self.roll_many([session], [actions], cancelled)[0]

    def roll_many(self, sessions: list, actions: list[np.ndarray], cancelled=lambda: False) -> list[tuple[dict, list]]:
        """Step each session through its actions (T, A), one T for all, every time step of all sessions in one
        batcher call -> per session what `roll` gives."""
        frames, records = [[] for _ in sessions], [[] for _ in sessions]
        for t in range(len(actions[0])):
            if cancelled():
                raise ApiError(None, "cancelled", 409)
            for i, pred in enumerate(self.batcher.step(sessions, [a[t][None] for a in actions])):
                frames[i].append({c: f[0] for c, f in pred.frames.items()})
                records[i].append({"state": np.asarray(pred.state[0], np.float64).tolist(),
                                   "reward": float(pred.reward[0]), "success": bool(pred.success[0]),
                                   "info": {k: float(np.asarray(v)[0]) for k, v in pred.info.items()}})
        return [({c: np.stack([f[c] for f in fs]) for c in self.cameras}, rs) for fs, rs in zip(frames, records)]


def _bounded_headers(records: list[dict]) -> dict[str, str]:
    last = records[-1]
    return {HEADERS["state"]: json.dumps(last["state"]), HEADERS["reward"]: json.dumps(last["reward"]),
            HEADERS["success"]: json.dumps(last["success"]), HEADERS["info"]: json.dumps(last["info"]),
            HEADERS["steps"]: str(len(records))}


def create_app(backend, name: str, policy_factory=None, limits: ServeLimits | None = None,
               api_key: str | None = None) -> FastAPI:
    """A FastAPI app serving `backend` (any `Backend`) as model `name`; `policy_factory()` -> a `Policy`
    answers policy jobs."""
    served = Served(backend, name, policy_factory)
    limits = limits or ServeLimits()
    app = FastAPI(title=f"cosmos3-robot: {name}")
    errors.install(app)
    sessions = SessionStore(limits.max_sessions)
    jobs = JobQueue(served, limits)
    app.router.on_startup.append(jobs.start)
    app.router.on_shutdown.append(jobs.stop)
    app.router.on_shutdown.append(served.batcher.close)

    @app.middleware("http")
    async def bearer(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1") and \
                request.headers.get("authorization", "") != f"Bearer {api_key}":
            return errors.envelope("Unauthorized: send the header Authorization: Bearer <api key>", 401)
        return await call_next(request)

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{
            "id": name, "object": "model", "created": int(time.time()), "owned_by": "cosmos3-robot",
            "cosmos3_robot": {"embodiment": served.spec.name, "domain_name": served.domain,
                              "domain_id": served.domain_id, "cameras": list(served.cameras),
                              "history": backend.history, "success_threshold": backend.success_threshold,
                              "action_space": served.layouts[0], "raw_action_dim": served.action.dims,
                              "fps": served.spec.video_fps, "size": "{}x{}".format(*layout_size(served.spec, served.cameras)),
                              "max_num_frames": limits.max_num_frames,
                              "session_step": "/v1/sessions/step",
                              "batching": {"calls": served.batcher.calls, "rows": served.batcher.rows,
                                           "largest": served.batcher.largest}}}]}

    @app.get("/health")
    @app.get("/healthz")
    def health():
        return Response(status_code=200)

    @app.post("/v1/videos/sync")
    async def videos_sync(request: Request):
        form = await _form(request)
        req = served.parse(form, limits)
        if req.mode != "forward_dynamics":
            raise ApiError("extra_params.action_mode", f"{req.mode!r}; this endpoint serves 'forward_dynamics' "
                           "(policy and inverse_dynamics are async jobs: POST /v1/videos)")
        req.frames = await video_form.read_reference(form, int(limits.max_upload_mb * 2**20), limits.max_num_frames)
        return await asyncio.to_thread(_forward, served, sessions, req)

    @app.post("/v1/sessions/step")
    async def sessions_step(request: Request):
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 (starlette/json raise several kinds)
            raise ApiError(None, "the body is not JSON; send {\"sessions\": [{\"id\", \"step\", \"action\"}]}") from None
        batch, form = served.parse_batch(body, limits)
        return await asyncio.to_thread(_step_batch, served, sessions, batch, form)

    @app.get("/v1/sessions/{session_id}")
    def session_record(session_id: str):
        kept = sessions.get(session_id)
        return {"id": session_id, "steps": kept.steps, "frames": kept.records}

    @app.post("/v1/videos")
    async def videos(request: Request):
        form = await _form(request)
        req = served.parse(form, limits)
        if req.mode == "forward_dynamics":
            raise ApiError("extra_params.action_mode", "'forward_dynamics' is served synchronously: POST /v1/videos/sync")
        if req.mode == "policy" and policy_factory is None:
            raise ApiError("extra_params.action_mode", "no policy is served here; start `cosmos3-robot serve "
                           "--policy NAME`")
        if req.mode == "inverse_dynamics" and not hasattr(backend, "inverse_dynamics"):
            raise ApiError("extra_params.action_mode", "'inverse_dynamics' is not served by this backend")
        req.frames = await video_form.read_reference(form, int(limits.max_upload_mb * 2**20), limits.max_num_frames)
        if req.frames is None:
            raise ApiError("input_reference", f"a {req.mode} job needs the first frame(s): an MP4 or an image")
        if req.mode == "inverse_dynamics" and len(req.frames) < 2:
            raise ApiError("input_reference", f"inverse_dynamics needs a video of at least 2 frames; got {len(req.frames)}")
        await asyncio.to_thread(served.context, req, req.mode == "inverse_dynamics")  # a bad state fails now
        return jobs.submit(req)

    @app.get("/v1/videos")
    def list_videos(after: str | None = None, limit: int | None = None, order: str = "desc"):
        if limit is not None and not 0 <= limit <= 100:
            raise ApiError("limit", f"{limit}; expected 0 <= limit <= 100")
        if order not in ("asc", "desc"):
            raise ApiError("order", f"{order!r}; 'asc' or 'desc'")
        return jobs.listing(after, limit, order)

    @app.get("/v1/videos/{video_id}")
    def video_status(video_id: str):
        return jobs.public(jobs.get(video_id))

    @app.delete("/v1/videos/{video_id}")
    def delete_video(video_id: str):
        jobs.delete(video_id)
        return {"id": video_id, "deleted": True, "object": "video.deleted"}

    @app.get("/v1/videos/{video_id}/content")
    def video_content(video_id: str):
        job = jobs.get(video_id)
        if job["status"] == "failed":
            raise ApiError(None, "Video generation failed. Check job status for error details.", 422)
        if job["status"] != "completed":
            raise ApiError("video_id", "Generation is still in-progress", 404)
        return Response(jobs.content[video_id], media_type="video/mp4")

    return app


async def _form(request: Request):
    try:
        return await request.form(max_files=4, max_fields=64)
    except Exception as e:  # noqa: BLE001 (starlette raises several kinds for a malformed body)
        raise ApiError(None, f"the body is not a readable multipart form ({type(e).__name__}: {e})") from None


@dataclass
class Kept:
    session: object
    last: dict  # camera -> (1, H, W, 3): the frame the next reply opens with
    steps: int
    records: list
    reply: Response | None = None
    views: dict | None = None  # camera -> (T, H, W, 3): the frames of the last request, for a retried batch
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Server-side sessions under unguessable ids (secrets.token_urlsafe), oldest dropped past `limit`."""

    def __init__(self, limit: int):
        self.limit, self.items, self.lock = limit, OrderedDict(), threading.Lock()

    def new_id(self) -> str:
        return "sess_" + secrets.token_urlsafe(24)

    def get(self, sid: str) -> Kept:
        with self.lock:
            if sid not in self.items:
                raise ApiError("extra_params.session_id", f"{sid[:64]!r} is unknown here (expired or never started); "
                               "send input_reference with session_id 'new' to start one", 404)
            self.items.move_to_end(sid)
            return self.items[sid]

    def put(self, sid: str, kept: Kept) -> None:
        with self.lock:
            self.items[sid] = kept
            while len(self.items) > self.limit:
                self.items.popitem(last=False)


def _forward(served: Served, sessions: SessionStore, req: video_form.VideoRequest) -> Response:
    """A forward-dynamics request, in a worker thread (the event loop stays free)."""
    if req.frames is not None:
        if req.session not in (None, "new"):
            raise ApiError("extra_params.session_id", "with input_reference it must be 'new' (or absent): the "
                           "server issues session ids")
        session = served.backend.reset(served.context(req), seed=[req.seed])
        first = {c: v[-1:] for c, v in split_views(served.spec, req.frames[: served.backend.history][-1:],
                                                   served.cameras).items()}
        kept = Kept(session, first, 0, [])
        sid = sessions.new_id() if req.session == "new" else None
        return _advance(served, req, kept, sid, sessions)
    if req.session is None:
        raise ApiError("input_reference", "missing: send the first frame(s) (an MP4 or an image), or continue a "
                       "session with extra_params.session_id")
    kept = sessions.get(req.session)
    with kept.lock:  # one request of a session at a time: a retry waits for the request it repeats
        if req.step is not None and req.step == kept.steps - 1 and kept.reply is not None:
            return kept.reply  # a retry of the request just served: the same reply, no second step
        if req.step is not None and req.step != kept.steps:
            raise ApiError("extra_params.step", f"{req.step}; the session has taken {kept.steps} requests", 409)
        return _advance(served, req, kept, req.session, sessions)


def _advance(served: Served, req: video_form.VideoRequest, kept: Kept, sid: str | None,
             sessions: SessionStore) -> Response:
    views, records = served.roll(kept.session, req.action)
    stepped = views
    if req.chunk == req.num_frames - 1:  # the video opens with the conditioning frame
        views = {c: np.concatenate([kept.last[c], v]) for c, v in views.items()}
    headers = _bounded_headers(records)
    if sid is not None:
        headers[HEADERS["session"]] = sid
    reply = Response(served.video(views, req), media_type="video/mp4", headers=headers)
    if sid is not None:
        kept.last, kept.steps, kept.records, kept.reply = {c: v[-1:] for c, v in views.items()}, kept.steps + 1, \
            records, reply
        kept.views = stepped
        sessions.put(sid, kept)
    return reply


def _step_batch(served: Served, sessions: SessionStore, batch: list, form: str = "mp4") -> Response:
    """A /v1/sessions/step request, in a worker thread: each time step of every session in one batcher call."""
    kept = [sessions.get(sid) for sid, _, _ in batch]
    order = sorted(range(len(batch)), key=lambda i: batch[i][0])  # locks in one order: no deadlock
    for i in order:
        kept[i].lock.acquire()
    try:
        todo = []
        for i, ((sid, step, _), k) in enumerate(zip(batch, kept)):
            if step is not None and step == k.steps - 1 and k.views is not None:
                if len(next(iter(k.views.values()))) != len(batch[i][2]):
                    raise ApiError(f"sessions[{i}].step", f"{step} repeats a request of another length", 409)
                continue  # a retry of the request just served: answered from the record, not stepped again
            if step is not None and step != k.steps:
                raise ApiError(f"sessions[{i}].step", f"{step}; session {sid[:16]}... has taken {k.steps} requests",
                               409)
            todo.append(i)
        T = len(batch[0][2])
        rolled = served.roll_many([kept[i].session for i in todo], [batch[i][2] for i in todo]) if todo else []
        for i, (views, records) in zip(todo, rolled):
            k = kept[i]
            k.last, k.steps, k.records, k.views, k.reply = {c: v[-1:] for c, v in views.items()}, k.steps + 1, \
                records, views, None
        video = np.concatenate([join_views(served.spec, k.views, served.cameras) for k in kept])
        data = mp4_bytes(video, served.spec.video_fps) if form == "mp4" else np.ascontiguousarray(video).tobytes()
        record = json.dumps({"object": "session.step", "model": served.name, "frames_per_session": T, "frames": form,
                             "shape": list(video.shape), "sessions": [{"id": sid, "steps": k.steps, "frames": k.records}
                                                                      for (sid, _, _), k in zip(batch, kept)]}).encode()
        return Response(record + data, media_type="application/octet-stream",
                        headers={HEADERS["json-bytes"]: str(len(record))})
    finally:
        for i in order:
            kept[i].lock.release()


class JobQueue:
    """vLLM-Omni's async video jobs: a bounded queue, one worker task, job records shaped as its VideoResponse."""

    def __init__(self, served: Served, limits: ServeLimits):
        self.served, self.limits = served, limits
        self.jobs: OrderedDict[str, dict] = OrderedDict()
        self.requests: dict[str, video_form.VideoRequest] = {}
        self.content: dict[str, bytes] = {}
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue(self.limits.max_queue)
        self.worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def submit(self, req: video_form.VideoRequest) -> dict:
        job = {"id": f"video_gen_{secrets.token_hex(16)}", "object": "video", "model": self.served.name,
               "prompt": req.prompt, "status": "queued", "progress": 0, "seconds": "4", "quality": "default",
               "size": None if req.size is None else "{}x{}".format(*req.size), "created_at": int(time.time()),
               "completed_at": None, "error": None, "media_type": "video/mp4", "fps": req.fps or self.served.spec.video_fps,
               "num_frames": req.num_frames, "file_name": None, "inference_time_s": None, "action": None,
               "stage_durations": {}, "peak_memory_mb": 0.0, "remixed_from_video_id": None, "expires_at": None}
        try:
            self.queue.put_nowait(job["id"])
        except asyncio.QueueFull:
            raise ApiError(None, f"{self.limits.max_queue} jobs are waiting (server option --max-queue); retry "
                           "later", 429) from None
        self.jobs[job["id"]], self.requests[job["id"]] = job, req
        return self.public(job)

    def get(self, video_id: str) -> dict:
        if video_id not in self.jobs:
            raise ApiError("video_id", "Video not found", 404)
        return self.jobs[video_id]

    @staticmethod
    def public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def listing(self, after, limit, order) -> dict:
        data = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=order == "desc")
        if after is not None:
            idx = next((i for i, j in enumerate(data) if j["id"] == after), None)
            data = [] if idx is None else data[idx + 1:]
        has_more = limit is not None and len(data) > limit
        data = data if limit is None else data[:limit]
        return {"object": "list", "data": [self.public(j) for j in data], "has_more": has_more,
                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    def delete(self, video_id: str) -> None:
        job = self.get(video_id)
        job["_cancel"] = True  # a queued job is skipped, a running one stops at its next step
        self.jobs.pop(video_id, None)
        self.requests.pop(video_id, None)
        self.content.pop(video_id, None)

    async def _work(self) -> None:
        while True:
            video_id = await self.queue.get()
            job, req = self.jobs.get(video_id), self.requests.get(video_id)
            if job is None or req is None:
                continue
            job["status"], t0 = "in_progress", time.perf_counter()
            try:
                actions, body = await asyncio.to_thread(self._run, req, lambda: job.get("_cancel", False))
            except Exception as e:  # noqa: BLE001 (a failed job is reported in its record, as vLLM-Omni's)
                job.update(status="failed", error={"code": getattr(e, "status", 500), "message": str(e)})
            else:
                job.update(status="completed", progress=100, completed_at=int(time.time()),
                           file_name=f"{video_id}.mp4", inference_time_s=time.perf_counter() - t0,
                           duration_s=req.num_frames / job["fps"], action={
                               "data": actions.tolist(), "shape": list(actions.shape), "dtype": "float32",
                               "raw_action_dim": int(actions.shape[1]), "action_mode": req.mode,
                               "domain_id": self.served.domain_id})
                if video_id in self.jobs:
                    self.content[video_id] = body
            finally:
                self.requests.pop(video_id, None)
                self._trim()

    def _trim(self) -> None:
        done = [k for k, j in self.jobs.items() if j["status"] in ("completed", "failed")]
        for k in done[: max(0, len(done) - self.limits.max_jobs)]:
            self.jobs.pop(k), self.content.pop(k, None)

    def _run(self, req: video_form.VideoRequest, cancelled) -> tuple[np.ndarray, bytes]:
        served = self.served
        ctx = served.context(req, clip=req.mode == "inverse_dynamics")
        if req.mode == "inverse_dynamics":
            with served.model_lock:
                actions = np.asarray(served.backend.inverse_dynamics(ctx, req.chunk, seed=req.seed), np.float32)
            return actions, served.video({c: v[0] for c, v in ctx.frames.items()}, req)
        obs = {served.spec.camera(c).key: f[0, -1] for c, f in ctx.frames.items()}
        obs["observation.state"] = ctx.state[0, -1].astype(np.float32)
        policy = served.policy_factory()
        policy.reset(req.seed)
        actions = np.stack([np.asarray(policy.select_action(obs), np.float64) for _ in range(req.chunk)])
        session = served.backend.reset(ctx, seed=[req.seed])
        views, _ = served.roll(session, actions, cancelled)  # the rollout the model imagines for the chunk
        if req.chunk == req.num_frames - 1:
            views = {c: np.concatenate([ctx.frames[c][0, -1:], v]) for c, v in views.items()}
        return actions.astype(np.float32), served.video(views, req)


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8000, policy_factory=None, limits: ServeLimits | None = None,
          api_key: str | None = None, served_model_name: str | None = None, **backend_kwargs) -> None:
    """Load `checkpoint` with its registered backend and serve it until interrupted."""
    import uvicorn

    from ..backends import load_backend

    backend = load_backend(checkpoint, **backend_kwargs)
    app = create_app(backend, served_model_name or str(checkpoint), policy_factory=policy_factory, limits=limits,
                     api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level="warning")
