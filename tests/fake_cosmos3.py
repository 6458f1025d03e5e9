"""A fake Cosmos 3 behind vLLM-Omni's video API, for the stateless client's tests: every request goes through
vLLM-Omni 0.30.0's own code (`VideoGenerationRequest`, `normalize_action_mode`, `resolve_domain_id`,
`load_action_tensor`, `action_start_frame_offset`, `vision_condition_indexes`, loaded by `vllm_omni_ref`) and the
form parsing of its `_parse_video_form` (extra_params a JSON object; model mismatch -> 400). The "model" is tiny
and exact: the reference frame, resized to `size` as the pipeline's action preprocessing does, conditions
latent frame 0 (only its first pixel frame is used), and predicted frame k is it rolled k pixels right."""

from __future__ import annotations

import json
import threading
import time

import cv2
import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import Response

from cosmos3_robot.datasets.video import frames_from_mp4, mp4_bytes

MODEL = "nvidia/Cosmos3-Nano"


def create_fake(ref) -> tuple[FastAPI, list]:
    app, seen = FastAPI(), []

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm-omni"}]}

    @app.post("/v1/videos/sync")
    async def sync(prompt: str = Form(...), model: str | None = Form(None), size: str | None = Form(None),
                   num_frames: int | None = Form(None), fps: float | None = Form(None), seed: int | None = Form(None),
                   extra_params: str | None = Form(None), input_reference: UploadFile | None = File(None)):
        extra = json.loads(extra_params) if extra_params else None
        if extra is not None and not isinstance(extra, dict):
            raise HTTPException(400, "extra_params must be a JSON object")
        fields = {"prompt": prompt, "model": model, "size": size, "num_frames": num_frames, "fps": fps, "seed": seed,
                  "extra_params": extra}
        try:
            req = ref.videos.VideoGenerationRequest(**{k: v for k, v in fields.items() if v is not None})
            if req.model is not None and req.model != MODEL:
                raise ValueError(f"Model mismatch: request specifies '{req.model}' but server is running '{MODEL}'.")
            extra = req.extra_params or {}
            mode = ref.action.normalize_action_mode(extra.get("action_mode"))
            domain = ref.action.resolve_domain_id(domain_id=extra.get("domain_id"), domain_name=extra.get("domain_name"),
                                                  require_explicit=True)
            action = ref.action.load_action_tensor(extra.get("action")).numpy()
            vp = req.resolve_video_params()
            offset = ref.action.action_start_frame_offset(mode, len(action), vp.num_frames)
            cond = ref.action.vision_condition_indexes(mode, vp.num_frames, ref.utils.COSMOS3_VAE_TEMPORAL_COMPRESSION)
        except ValueError as e:  # pydantic's ValidationError is a ValueError too
            raise HTTPException(400, str(e)) from None
        data = await input_reference.read()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        frames = frames_from_mp4(data) if img is None else img[None, :, :, ::-1]
        first = cv2.resize(np.ascontiguousarray(frames[cond[0]]), (vp.width, vp.height), interpolation=cv2.INTER_AREA)
        video = np.stack([np.roll(first, k, axis=1) for k in range(vp.num_frames)])
        seen.append({"request": req, "mode": mode, "domain_id": domain, "action": action, "offset": offset,
                     "reference_frames": len(frames), "size": (vp.width, vp.height), "num_frames": vp.num_frames,
                     "reference": frames[0]})
        return Response(mp4_bytes(video, vp.fps), media_type="video/mp4")

    return app, seen


class Running:
    """A uvicorn server for `app` on a free local port, in a thread."""

    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(self.url + "/v1/models")
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the fake Cosmos 3 did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
