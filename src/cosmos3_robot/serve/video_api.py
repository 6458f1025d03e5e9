"""Any registered backend behind the subset of vLLM-Omni's Cosmos 3 video API that action-conditioned
rollouts use (vllm-project/vllm-omni: recipes/cosmos3/Cosmos3-Nano.md, "Action -- forward dynamics"):

    POST /v1/videos/sync   multipart form: model, prompt, size "WxH", num_frames, fps, seed, input_reference
                           (an MP4 of context frames, or one image), extra_params (JSON): action_mode
                           "forward_dynamics", domain_name / domain_id, raw_action_dim, action_chunk_size
                           (num_frames or num_frames - 1), action [action_chunk_size, raw_action_dim]
                           -> the rollout video (video/mp4)
    POST /v1/videos        async job, extra_params.action_mode "policy": from the first frame(s) and the
                           instruction, the action chunk (the served `Policy`) and the rollout video the
                           backend imagines for it; GET /v1/videos/{id} -> {status, action: {data, shape,
                           dtype, raw_action_dim, domain_id}}, GET /v1/videos/{id}/content -> the MP4
    GET  /v1/models        the served model

What a learned simulator needs beyond the published API is an extension, in the same request and reply:
- extra_params `session_id`: the server keeps each session's rollout state, so later requests of the
  session send only the action (a request with `input_reference` (re)starts it); `state` (history x S, the
  robot state of the context frames); `action_space` "raw" (physical units; the server normalizes nothing)
  or "model" (the spec's [-1, 1] scaling, undone here exactly once); `deterministic_seed` (the session's
  sampling seed, else `seed`); `step` (how many steps the session has taken): a repeated request (a client
  retrying after a timeout) gets the reply it missed instead of stepping the session twice;
- reply headers `x-cosmos3-robot-state` / `-reward` / `-success` / `-info` (JSON, one entry per predicted
  frame); GET /v1/models carries the embodiment, cameras, history and success threshold.
Videos are lossless H.264 RGB, so frames cross the wire unchanged. Several cameras travel as one video in the
spec's concat layout (Cosmos' multi-view convention); one camera as itself."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict

import cv2

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import Response

from ..backends.base import Context
from ..backends.remote import HEADERS, from_model, join_views, split_views
from ..datasets.video import frames_from_mp4, mp4_bytes
from ..embodiments import EmbodimentSpec

STATE, REWARD, SUCCESS, INFO = (HEADERS[k] for k in ("state", "reward", "success", "info"))


def bad(field: str, message: str, status: int = 400):
    return HTTPException(status, detail={"field": field, "error": message})


def chunk_size(extra: dict, num_frames: int) -> int:
    chunk = int(extra.get("action_chunk_size", num_frames - 1))
    if chunk not in (num_frames, num_frames - 1) or chunk < 1:
        raise bad("extra_params.action_chunk_size", f"{chunk} with num_frames={num_frames}; it must equal "
                  "num_frames or num_frames - 1 and be at least 1")
    return chunk


def create_app(backend, name: str, max_sessions: int = 1024, policy_factory=None) -> FastAPI:
    """A FastAPI app serving `backend` (any `Backend`) as `name`; `policy_factory()` -> a `Policy` answers
    policy jobs. Sessions past `max_sessions` are dropped oldest first."""
    spec: EmbodimentSpec = backend.spec
    cameras = tuple(backend.cameras)
    sessions: OrderedDict[str, object] = OrderedDict()
    lock = threading.Lock()  # one model call at a time; requests of different sessions queue
    app = FastAPI(title=f"cosmos3-robot: {name}")

    def request(model: str, extra_params: str, mode: str, serves: str) -> dict:
        """The checks every request passes: JSON extra_params, this model, the endpoint's action_mode."""
        try:
            extra = json.loads(extra_params)
        except json.JSONDecodeError as e:
            raise bad("extra_params", f"not JSON: {e}") from e
        if model != name:
            raise bad("model", f"{model!r} is not served here; this server serves {name!r}", 404)
        if extra.get("action_mode") != mode:
            raise bad("extra_params.action_mode", f"{extra.get('action_mode')!r}; {serves}")
        return extra

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{
            "id": name, "object": "model", "owned_by": "cosmos3-robot",
            "cosmos3_robot": {"embodiment": spec.name, "domain_id": spec.domain_id, "cameras": list(cameras),
                              "history": backend.history, "success_threshold": backend.success_threshold,
                              "raw_action_dim": spec.action_dims, "fps": spec.video_fps}}]}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.post("/v1/videos/sync")
    async def videos_sync(model: str = Form(name), prompt: str = Form(""), num_frames: int = Form(2),
                          fps: float = Form(0.0), seed: int = Form(0), size: str = Form(""),
                          extra_params: str = Form("{}"), input_reference: UploadFile | None = File(None)):
        extra = request(model, extra_params, "forward_dynamics",
                        "this endpoint serves 'forward_dynamics' (policy jobs use POST /v1/videos)")
        domain = extra.get("domain_name", extra.get("domain_id"))
        if domain is not None and domain not in (spec.name, spec.domain_id):
            raise bad("extra_params.domain_name", f"{domain!r}; this model's domain is {spec.name!r} "
                      f"(domain_id {spec.domain_id})")
        dim = int(extra.get("raw_action_dim", spec.action_dims))
        if dim != spec.action_dims:
            raise bad("extra_params.raw_action_dim", f"{dim}; the {spec.name} action has {spec.action_dims} dims")
        chunk = chunk_size(extra, num_frames)
        action = np.asarray(extra.get("action", []), np.float64)
        if action.shape != (chunk, dim) or not np.isfinite(action).all():
            raise bad("extra_params.action", f"shape {action.shape}; expected finite [{chunk}, {dim}] "
                      "([action_chunk_size, raw_action_dim])")
        space = extra.get("action_space", "raw")
        if space not in ("raw", "model"):
            raise bad("extra_params.action_space", f"{space!r}; 'raw' (physical units) or 'model' ([-1, 1])")
        if space == "model":
            action = from_model(spec, action)  # the one place a "model" action is unscaled
        sid = str(extra.get("session_id", ""))
        video = None
        if input_reference is not None:
            try:
                video = frames_from_mp4(await input_reference.read())
            except Exception as e:  # noqa: BLE001 (PyAV raises many kinds)
                raise bad("input_reference", f"not a readable MP4: {e}") from e
        step = extra.get("step")
        with lock:
            if sid and video is None and sid in sessions and step is not None:
                kept = sessions[sid]
                if int(step) == kept[2] - 1 and kept[3] is not None:
                    return kept[3]  # a retry of the request just served: the same reply, no second step
                if int(step) != kept[2]:
                    raise bad("extra_params.step", f"{step}; session {sid!r} has taken {kept[2]} steps", 409)
            if video is not None:
                views = split_views(spec, video, cameras)
                T = len(video)
                state = np.asarray(extra.get("state", np.zeros((T, spec.state.dims))), np.float64).reshape(T, -1)
                if state.shape[1] != spec.state.dims:
                    raise bad("extra_params.state", f"shape {state.shape}; expected [{T}, {spec.state.dims}]")
                ctx = Context({c: f[None] for c, f in views.items()}, state[None], prompt or None)
                session = backend.reset(ctx, seed=[int(extra.get("deterministic_seed", seed))])
                first = {c: f[-1:] for c, f in views.items()}
                steps_done = 0
            elif sid in sessions:
                session, first, steps_done, _ = sessions[sid]
                sessions.move_to_end(sid)
            else:
                raise bad("extra_params.session_id", f"{sid!r} is unknown here (expired or never started); send "
                          "input_reference (the context frames) to start it", 404)
            frames, states, rewards, successes, infos = [], [], [], [], []
            for a in action:
                pred = backend.step(session, a[None])
                frames.append({c: f[0] for c, f in pred.frames.items()})
                states.append(np.asarray(pred.state[0], np.float64).tolist())
                rewards.append(float(pred.reward[0]))
                successes.append(bool(pred.success[0]))
                infos.append({k: float(np.asarray(v)[0]) for k, v in pred.info.items()})
            views = {c: np.stack([f[c] for f in frames]) for c in cameras}
            if chunk == num_frames - 1:  # the video opens with the conditioning frame
                views = {c: np.concatenate([first[c], v]) for c, v in views.items()}
            body = mp4_bytes(join_views(spec, views, cameras), fps or spec.video_fps)
            reply = Response(body, media_type="video/mp4", headers={
                STATE: json.dumps(states), REWARD: json.dumps(rewards), SUCCESS: json.dumps(successes),
                INFO: json.dumps(infos)})
            if sid:
                sessions[sid] = (session, {c: frames[-1][c][None] for c in cameras}, steps_done + 1, reply)
                while len(sessions) > max_sessions:
                    sessions.popitem(last=False)
        return reply

    jobs: OrderedDict[str, dict] = OrderedDict()

    @app.post("/v1/videos")
    async def videos(model: str = Form(name), prompt: str = Form(""), num_frames: int = Form(2),
                     fps: float = Form(0.0), seed: int = Form(0), size: str = Form(""),
                     extra_params: str = Form("{}"), input_reference: UploadFile | None = File(None)):
        extra = request(model, extra_params, "policy", "this server's jobs are 'policy' (forward dynamics: "
                        "POST /v1/videos/sync; inverse dynamics is not served)")
        if policy_factory is None:
            raise bad("extra_params.action_mode", "no policy is served here; start `cosmos3-robot serve --policy NAME`")
        chunk = chunk_size(extra, num_frames)
        if input_reference is None:
            raise bad("input_reference", "a policy job needs the first frame(s): an MP4 or one image")
        data = await input_reference.read()
        try:
            video = frames_from_mp4(data)
        except Exception:  # noqa: BLE001 (an image, not a video)
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise bad("input_reference", "neither an MP4 nor an image") from None
            video = img[None, :, :, ::-1]
        views = split_views(spec, video, cameras)
        T = len(video)
        state = np.asarray(extra.get("state", np.zeros((T, spec.state.dims))), np.float64).reshape(T, -1)
        obs = {spec.camera(c).key: f[-1] for c, f in views.items()} | {"observation.state": state[-1].astype(np.float32)}
        policy = policy_factory()
        policy.reset(int(extra.get("deterministic_seed", seed)))
        with lock:
            actions = np.stack([np.asarray(policy.select_action(obs), np.float64) for _ in range(chunk)])
            session = backend.reset(Context({c: f[None] for c, f in views.items()}, state[None], prompt or None),
                                    seed=[int(extra.get("deterministic_seed", seed))])
            frames = [backend.step(session, a[None]).frames for a in actions]  # what the model imagines
        imagined = {c: np.stack([f[c][0] for f in frames]) for c in cameras}
        if chunk == num_frames - 1:
            imagined = {c: np.concatenate([views[c][-1:], v]) for c, v in imagined.items()}
        job = {"id": f"video_{uuid.uuid4().hex}", "object": "video", "model": name, "status": "completed",
               "created_at": int(time.time()), "num_frames": num_frames,
               "action": {"data": actions.reshape(-1).tolist(), "shape": list(actions.shape), "dtype": "float64",
                          "raw_action_dim": int(actions.shape[1]), "domain_id": spec.domain_id},
               "_content": mp4_bytes(join_views(spec, imagined, cameras), fps or spec.video_fps)}
        jobs[job["id"]] = job
        while len(jobs) > max_sessions:
            jobs.popitem(last=False)
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def job_of(video_id: str) -> dict:
        if video_id not in jobs:
            raise bad("video_id", f"{video_id!r} is unknown here (expired or never made)", 404)
        return jobs[video_id]

    @app.get("/v1/videos/{video_id}")
    def video_status(video_id: str):
        return {k: v for k, v in job_of(video_id).items() if not k.startswith("_")}

    @app.get("/v1/videos/{video_id}/content")
    def video_content(video_id: str):
        return Response(job_of(video_id)["_content"], media_type="video/mp4")

    return app


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8000, policy_factory=None, **backend_kwargs) -> None:
    """Load `checkpoint` with its registered backend and serve it until interrupted; `policy_factory()` -> a
    `Policy` answers policy jobs."""
    import uvicorn

    from ..backends import load_backend

    backend = load_backend(checkpoint, **backend_kwargs)
    uvicorn.run(create_app(backend, str(checkpoint), policy_factory=policy_factory), host=host, port=port,
                log_level="warning")
