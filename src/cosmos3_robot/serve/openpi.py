"""openpi's policy protocol, both ways, spoken with `websockets` and `msgpack` (Physical-Intelligence/openpi:
packages/openpi-client/src/openpi_client/{websocket_client_policy.py, msgpack_numpy.py, image_tools.py},
src/openpi/serving/websocket_policy_server.py):

- the server speaks first: its metadata (a msgpack map); then each client message is an observation map and
  each reply an action map whose "actions" is (H, A); numpy arrays travel as
  {b"__ndarray__": True, b"data", b"dtype", b"shape"}; an error is sent as a text frame and the connection
  closes; GET /healthz answers 200.
- observations use openpi's keys. DROID (openpi's examples/droid): "observation/exterior_image_1_left" and
  "observation/wrist_image_left" (224 x 224, resized with padding as image_tools.resize_with_pad does),
  "observation/joint_position" (7), "observation/gripper_position" (1), "prompt". Other embodiments:
  "observation/<camera>" and "observation/state". Our client also sends "observation/state" (the spec's full
  state) beside openpi's keys; openpi servers read only the keys they know.

`serve_policy` puts any `Policy` behind it (one policy instance per connection; a chunk of H actions is H
calls of `select_action` on the observation). `OpenPIPolicy` is a `Policy` that drives any openpi server and
reads the chunk length from each reply."""

from __future__ import annotations

import asyncio
import functools
import http
import time
import traceback

import msgpack
import numpy as np
from PIL import Image

from ..embodiments import EmbodimentSpec, load_spec
from ..errors import Unreachable, UserError

IMAGE_SIZE = 224
DROID_KEYS = {"exterior_1_left": "observation/exterior_image_1_left", "wrist_left": "observation/wrist_image_left"}


def _pack_array(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise UserError(f"openpi's wire format has no dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack_array(obj):
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


packb = functools.partial(msgpack.packb, default=_pack_array)
unpackb = functools.partial(msgpack.unpackb, object_hook=_unpack_array)


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """openpi's image_tools.resize_with_pad for one HWC uint8 image: keep the aspect, bilinear, zero padding
    centred."""
    if image.shape[:2] == (height, width):
        return image
    cur_h, cur_w = image.shape[:2]
    ratio = max(cur_w / width, cur_h / height)
    rh, rw = int(cur_h / ratio), int(cur_w / ratio)
    resized = np.asarray(Image.fromarray(image).resize((rw, rh), resample=Image.BILINEAR))
    out = np.zeros((height, width, 3), np.uint8)
    top, left = max(0, int((height - rh) / 2)), max(0, int((width - rw) / 2))
    out[top : top + rh, left : left + rw] = resized
    return out


def unpad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The inverse of `resize_with_pad` up to resampling: cut the padding, resize to (height, width)."""
    if image.shape[:2] == (height, width):
        return image
    H, W = image.shape[:2]
    ratio = max(width / W, height / H)
    rh, rw = int(height / ratio), int(width / ratio)
    top, left = max(0, int((H - rh) / 2)), max(0, int((W - rw) / 2))
    crop = image[top : top + rh, left : left + rw]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((width, height), resample=Image.BILINEAR))


def _droid(spec: EmbodimentSpec) -> bool:
    return all(c in {cam.name for cam in spec.cameras} for c in DROID_KEYS)


def to_openpi(spec: EmbodimentSpec, observation: dict, prompt: str) -> dict:
    """Our observation (spec keys) -> openpi's."""
    state = np.asarray(observation["observation.state"], np.float32)
    out: dict = {"prompt": prompt, "observation/state": state}
    if _droid(spec):
        parts = {f: state[sl] for f, sl in spec.state.slices().items()}
        for name, key in DROID_KEYS.items():
            out[key] = resize_with_pad(np.asarray(observation[spec.camera(name).key]), IMAGE_SIZE, IMAGE_SIZE)
        out["observation/joint_position"] = parts["joint_positions"].astype(np.float32)
        out["observation/gripper_position"] = parts["gripper_position"].astype(np.float32)
    else:
        for cam in spec.cameras:
            out[f"observation/{cam.name}"] = np.asarray(observation[cam.key])
    return out


def from_openpi(spec: EmbodimentSpec, observation: dict) -> dict:
    """openpi's observation -> ours (images back at the spec's size; a state openpi does not carry is zero)."""
    out: dict = {}
    if _droid(spec):
        for name, key in DROID_KEYS.items():
            cam = spec.camera(name)
            out[cam.key] = unpad(np.asarray(observation[key]), cam.height, cam.width)
        if "observation/state" in observation:
            out["observation.state"] = np.asarray(observation["observation/state"], np.float32)
        else:
            state = np.zeros(spec.state.dims, np.float32)
            sl = spec.state.slices()
            state[sl["joint_positions"]] = np.asarray(observation["observation/joint_position"]).reshape(-1)
            state[sl["gripper_position"]] = np.asarray(observation["observation/gripper_position"]).reshape(-1)
            out["observation.state"] = state
        for cam in spec.cameras:  # cameras openpi's DROID input leaves out (exterior_2_left) stay black
            out.setdefault(cam.key, np.zeros((cam.height, cam.width, 3), np.uint8))
    else:
        for cam in spec.cameras:
            out[cam.key] = np.asarray(observation[f"observation/{cam.name}"])
        out["observation.state"] = np.asarray(observation["observation/state"], np.float32)
    return out


async def _serve(policy_factory, spec: EmbodimentSpec, host: str, port: int, chunk: int, ready=None) -> None:
    import websockets.asyncio.server as ws_server

    def health(connection, request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return None

    metadata = {"embodiment": spec.name, "action_horizon": chunk, "server": "cosmos3-robot"}

    async def handler(ws):
        policy = policy_factory()
        policy.reset(0)
        await ws.send(packb(metadata))
        while True:
            try:
                message = unpackb(await ws.recv())
            except Exception:  # noqa: BLE001 (a closed connection ends the session)
                return
            try:
                if isinstance(message, dict) and "__ctrl__" in message:  # newer clients' episode markers
                    if message["__ctrl__"] == "episode_start":
                        policy.reset(int(message.get("__episode_id__", 0)))
                    await ws.send(packb({}))
                    continue
                t0 = time.monotonic()
                obs = from_openpi(spec, message)
                actions = np.stack([np.asarray(policy.select_action(obs), np.float32) for _ in range(chunk)])
                await ws.send(packb({"actions": actions,
                                     "server_timing": {"infer_ms": (time.monotonic() - t0) * 1000}}))
            except Exception:  # noqa: BLE001 (openpi's server sends the traceback as text, then closes)
                await ws.send(traceback.format_exc())
                await ws.close()
                return

    async with ws_server.serve(handler, host, port, compression=None, max_size=None, process_request=health) as s:
        if ready is not None:
            ready(s)
        await s.serve_forever()


def serve_policy(policy_factory, spec: EmbodimentSpec | str, host: str = "127.0.0.1", port: int = 8000,
                 chunk: int = 8) -> None:
    """Serve `policy_factory()` (a new `Policy` per connection) over openpi's protocol until interrupted."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    if chunk < 1:
        raise UserError(f"chunk={chunk}; a reply carries at least one action")
    asyncio.run(_serve(policy_factory, spec, host, port, chunk))


class OpenPIPolicy:
    """Any openpi policy server as a `Policy`: our observations go out in openpi's keys, each reply's action
    chunk (H, A) is played out one action per step, then the next observation is sent."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, spec: EmbodimentSpec | str = "droid",
                 prompt: str | None = None, name: str | None = None, open_timeout: float = 30.0):
        import websockets.sync.client

        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.uri = host if host.startswith("ws") else f"ws://{host}:{port}"
        self.prompt = prompt or self.spec.task
        self.name = name or f"openpi:{self.uri}"
        try:
            # entered as a context manager, as websockets 17 wants; `close` leaves it
            self.ws = websockets.sync.client.connect(self.uri, compression=None, max_size=None,
                                                     open_timeout=open_timeout).__enter__()
        except (OSError, TimeoutError) as e:
            raise Unreachable(f"{self.uri}: no openpi policy server there ({e}); start one, e.g. "
                                  "`cosmos3-robot serve-policy --env droid --policy expert --port P`") from e
        self.metadata = unpackb(self.ws.recv())
        self._queue: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        self._queue = []

    def infer(self, observation: dict) -> dict:
        self.ws.send(packb(to_openpi(self.spec, observation, self.prompt)))
        reply = self.ws.recv()
        if isinstance(reply, str):
            raise RuntimeError(f"{self.uri}: the policy server failed:\n{reply}")
        return unpackb(reply)

    def select_action(self, observation: dict) -> np.ndarray:
        if not self._queue:
            actions = np.asarray(self.infer(observation)["actions"], np.float32)
            if actions.ndim != 2 or len(actions) == 0:
                raise UserError(f"{self.uri}: 'actions' came back with shape {actions.shape}; expected (H, A)")
            self._queue = list(actions)
        return self._queue.pop(0)

    def close(self) -> None:
        self.ws.__exit__(None, None, None)
