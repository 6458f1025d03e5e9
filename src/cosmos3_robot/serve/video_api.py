"""Any registered backend behind the subset of vLLM-Omni's Cosmos 3 video API that action-conditioned
rollouts use (vllm-project/vllm-omni: recipes/cosmos3/Cosmos3-Nano.md, "Action -- forward dynamics"):

    POST /v1/videos/sync   multipart form: model, prompt, size "WxH", num_frames, fps, seed, input_reference
                           (an MP4 of context frames, or one image), extra_params (JSON): action_mode
                           "forward_dynamics", domain_name / domain_id, raw_action_dim, action_chunk_size
                           (num_frames or num_frames - 1), action [action_chunk_size, raw_action_dim]
                           -> the rollout video (video/mp4)
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
from collections import OrderedDict

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


def create_app(backend, name: str, max_sessions: int = 1024) -> FastAPI:
    """A FastAPI app serving `backend` (any `Backend`) as `name`. Sessions past `max_sessions` are dropped
    oldest first."""
    spec: EmbodimentSpec = backend.spec
    cameras = tuple(backend.cameras)
    sessions: OrderedDict[str, object] = OrderedDict()
    lock = threading.Lock()  # one model call at a time; requests of different sessions queue
    app = FastAPI(title=f"cosmos3-robot: {name}")

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
        try:
            extra = json.loads(extra_params)
        except json.JSONDecodeError as e:
            raise bad("extra_params", f"not JSON: {e}") from e
        if model != name:
            raise bad("model", f"{model!r} is not served here; this server serves {name!r}", 404)
        if extra.get("action_mode") != "forward_dynamics":
            raise bad("extra_params.action_mode", f"{extra.get('action_mode')!r}; this endpoint serves "
                      "'forward_dynamics' (policy and inverse dynamics use POST /v1/videos)")
        domain = extra.get("domain_name", extra.get("domain_id"))
        if domain is not None and domain not in (spec.name, spec.domain_id):
            raise bad("extra_params.domain_name", f"{domain!r}; this model's domain is {spec.name!r} "
                      f"(domain_id {spec.domain_id})")
        dim = int(extra.get("raw_action_dim", spec.action_dims))
        if dim != spec.action_dims:
            raise bad("extra_params.raw_action_dim", f"{dim}; the {spec.name} action has {spec.action_dims} dims")
        chunk = int(extra.get("action_chunk_size", num_frames - 1))
        if chunk not in (num_frames, num_frames - 1) or chunk < 1:
            raise bad("extra_params.action_chunk_size", f"{chunk} with num_frames={num_frames}; it must equal "
                      "num_frames or num_frames - 1 and be at least 1")
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

    return app


def serve(checkpoint, host: str = "127.0.0.1", port: int = 8000, **backend_kwargs) -> None:
    """Load `checkpoint` with its registered backend and serve it until interrupted."""
    import uvicorn

    from ..backends import load_backend

    backend = load_backend(checkpoint, **backend_kwargs)
    uvicorn.run(create_app(backend, str(checkpoint)), host=host, port=port, log_level="warning")
