"""Policies over the wire, both ways, in two flavours, spoken with `websockets` and `msgpack`:

- **openpi** (Physical-Intelligence/openpi: packages/openpi-client/src/openpi_client/{websocket_client_policy.py,
  msgpack_numpy.py, image_tools.py}, src/openpi/serving/websocket_policy_server.py, examples/droid/main.py): the
  server speaks first, its metadata (a msgpack map); each client message is an observation map and each reply a
  map whose "actions" is (H, A); an error is a text frame, then the connection closes; GET /healthz answers 200.
  pi05_droid answers DROID's `joint_velocity` action space (7 joint velocities in [-1, 1] + gripper position):
  the example clips, binarizes the gripper and steps RobotEnv(action_space="joint_velocity"), which moves each
  joint by velocity * max_joint_delta (0.2 rad) per 15 Hz step; it re-queries after an open-loop horizon of 8.
- **vllm-omni** (vllm_omni/entrypoints/openpi/connection.py, deploy/cosmos3_policy_droid.yaml: how
  Cosmos3-Nano-Policy-DROID is served): the handshake is its `PolicyServerConfig` (image_resolution,
  n_external_cameras, needs_wrist_camera, needs_stereo_camera, needs_session_id, action_space), a reply is the
  bare (H, A) array, {"endpoint": "reset"} resets the session, an error is {"type": "error", "message"}.
Numpy arrays travel as {b"__ndarray__": True, b"data", b"dtype", b"shape"} in both.
- observations use openpi's keys. DROID (openpi's examples/droid): "observation/exterior_image_1_left" and
  "observation/wrist_image_left" (224 x 224, resized with padding as image_tools.resize_with_pad does),
  "observation/joint_position" (7), "observation/gripper_position" (1), "prompt". Other embodiments:
  "observation/<camera>" and "observation/state". Our client also sends "observation/state" (the spec's full
  state) beside openpi's keys; openpi servers read only the keys they know.

`serve_policy` puts any `Policy` behind either flavour: one policy per connection; a chunk's rows are the
policy's real next actions, imagined through the task's learned simulator (else the server says chunk 1); the
action space on the wire is `joint_position` or `joint_velocity`, converted exactly. `OpenPIPolicy` drives a
server of either flavour as a `Policy`: it reads the handshake, resets per episode, re-queries after
`open_loop_horizon` actions and converts the server's action space to the env's."""

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
from ..embodiments.state_completion import complete_state
from ..errors import Unreachable, UserError

IMAGE_SIZE = 224
DROID_KEYS = {"exterior_1_left": "observation/exterior_image_1_left", "wrist_left": "observation/wrist_image_left"}
# openpi's DROID example sends one exterior camera; our client adds the second (servers ignore keys they do not read)
DROID_EXTRA = {"exterior_2_left": "observation/exterior_image_2_left"}


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
    out: dict = {"prompt": prompt}
    if not _droid(spec):
        out["observation/state"] = state
    if _droid(spec):
        parts = {f: state[sl] for f, sl in spec.state.slices().items()}
        for name, key in {**DROID_KEYS, **DROID_EXTRA}.items():
            out[key] = resize_with_pad(np.asarray(observation[spec.camera(name).key]), IMAGE_SIZE, IMAGE_SIZE)
        out["observation/joint_position"] = parts["joint_positions"].astype(np.float32)
        out["observation/gripper_position"] = parts["gripper_position"].astype(np.float32)
    else:
        for cam in spec.cameras:
            out[f"observation/{cam.name}"] = np.asarray(observation[cam.key])
    return out


PROTOCOLS = ("openpi", "vllm-omni")
WIRE_SPACES = ("joint_position", "joint_velocity")  # DROID RobotEnv action spaces; the gripper is a position in both
MAX_SIDE = 4096  # pixels: a bigger image is refused before it is resized


def joint_step(spec: EmbodimentSpec) -> float:
    """Radians one unit of DROID joint velocity moves a joint per control step (the spec's joint_velocity
    field's max_delta: robot_ik_solver.py max_joint_delta)."""
    field = spec.action_variant("joint_velocity").field("joint_velocity")
    return float(field.max_delta)


def wire_from_targets(spec: EmbodimentSpec, space: str, targets: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Joint-position targets (H, 8) from joint states (H, 7) -> the wire's action space (H, 8)."""
    targets = np.asarray(targets, np.float64)
    if space == "joint_position":
        return targets.astype(np.float32)
    vel = np.clip((targets[:, :7] - np.asarray(joints, np.float64)) / joint_step(spec), -1, 1)
    return np.concatenate([vel, targets[:, 7:8]], axis=1).astype(np.float32)


def target_from_wire(spec: EmbodimentSpec, space: str, action: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """One wire action (8,) at joint state (7,) -> a joint-position target (8,), as DROID's RobotEnv executes it
    (velocities clipped to [-1, 1], the gripper binarized as openpi's DROID example does)."""
    action = np.asarray(action, np.float64)
    if space == "joint_position":
        return action
    gripper = 1.0 if action[7] > 0.5 else 0.0
    return np.concatenate([np.asarray(joints, np.float64) + np.clip(action[:7], -1, 1) * joint_step(spec), [gripper]])


def _image(value, key: str) -> np.ndarray:
    img = np.asarray(value)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise UserError(f"{key}: an image must be (H, W, 3) uint8; got {img.dtype} {img.shape}")
    if max(img.shape[:2]) > MAX_SIDE or min(img.shape[:2]) < 1:
        raise UserError(f"{key}: {img.shape[1]}x{img.shape[0]} pixels; at most {MAX_SIDE} a side")
    return img


def _vector(value, key: str, dims: int, lower=None, upper=None) -> np.ndarray:
    try:
        vec = np.asarray(value, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{key}: not numeric") from None
    if vec.shape != (dims,) or not np.isfinite(vec).all():
        raise UserError(f"{key}: expected {dims} finite numbers; got shape {vec.shape}"
                        + ("" if vec.shape != (dims,) else " with NaN or inf"))
    if lower is not None and ((vec < lower - 1e-3).any() or (vec > upper + 1e-3).any()):
        raise UserError(f"{key}: {np.round(vec, 3).tolist()} is outside the robot's limits "
                        f"[{np.round(lower, 3).tolist()}, {np.round(upper, 3).tolist()}]")
    return vec


def checked_observation(spec: EmbodimentSpec, message) -> dict:
    """An openpi observation, validated (finite states of the right length inside the spec's limits, decodable
    images within size) -> ours. openpi's DROID keys need no project key: the cartesian pose comes from the
    joints (`complete_state`)."""
    if not isinstance(message, dict):
        raise UserError(f"an observation must be a map of openpi keys; got {type(message).__name__}")
    limits = spec.state
    if _droid(spec):
        out: dict = {}
        for name, key in DROID_KEYS.items():
            if key not in message:
                raise UserError(f"{key}: missing (openpi's DROID observation)")
            cam = spec.camera(name)
            out[cam.key] = unpad(_image(message[key], key), cam.height, cam.width)
        sl = spec.state.slices()
        if "observation/state" in message:
            state = _vector(message["observation/state"], "observation/state", limits.dims)
        else:
            fields = {f: _vector(message.get(k), k, sl[f].stop - sl[f].start, limits.lower[sl[f]], limits.upper[sl[f]])
                      for f, k in (("joint_positions", "observation/joint_position"),
                                   ("gripper_position", "observation/gripper_position"))}
            state = complete_state(spec, fields)
        out["observation.state"] = state.astype(np.float32)
        for name, key in DROID_EXTRA.items():
            if key in message:
                cam = spec.camera(name)
                out[cam.key] = unpad(_image(message[key], key), cam.height, cam.width)
        for cam in spec.cameras:  # cameras openpi's DROID input leaves out (exterior_2_left) stay black
            out.setdefault(cam.key, np.zeros((cam.height, cam.width, 3), np.uint8))
        return out
    out = {}
    for cam in spec.cameras:
        key = f"observation/{cam.name}"
        if key not in message:
            raise UserError(f"{key}: missing")
        img = _image(message[key], key)
        out[cam.key] = img if img.shape[:2] == (cam.height, cam.width) else unpad(img, cam.height, cam.width)
    out["observation.state"] = _vector(message.get("observation/state"), "observation/state", limits.dims,
                                       limits.lower, limits.upper).astype(np.float32)
    return out


def from_openpi(spec: EmbodimentSpec, observation: dict) -> dict:
    """openpi's observation -> ours (validated; see `checked_observation`)."""
    return checked_observation(spec, observation)


class PolicyServer:
    """Any `Policy` behind one flavour of the protocol (`PROTOCOLS`), replying chunks of `chunk` actions in the
    wire `action_space`. `imagine(policy, observation, H)` -> (targets (H, A), states (H, S)) rolls the policy
    through a learned simulator, so a chunk's rows are its real next actions; without it `chunk` must be 1."""

    def __init__(self, policy_factory, spec: EmbodimentSpec, protocol: str = "openpi",
                 action_space: str | None = None, chunk: int = 10, imagine=None, max_message_mb: float = 64.0):
        if protocol not in PROTOCOLS:
            raise UserError(f"protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
        droid = _droid(spec)
        if droid:
            action_space = action_space or ("joint_velocity" if protocol == "openpi" else "joint_position")
        if droid and action_space not in WIRE_SPACES:
            raise UserError(f"action space {action_space!r}; choose one of {list(WIRE_SPACES)}")
        if not droid and action_space not in (None, spec.default_action):
            raise UserError(f"action space {action_space!r}: {spec.name!r} policies answer {spec.default_action!r}")
        if chunk < 1:
            raise UserError(f"chunk={chunk}; a reply carries at least one action")
        if chunk > 1 and imagine is None:
            raise UserError(f"chunk={chunk} needs a learned simulator to imagine the policy's next actions, and "
                            f"{spec.name!r} has none here; serve chunk 1")
        self.policy_factory, self.spec, self.protocol = policy_factory, spec, protocol
        self.action_space, self.chunk, self.imagine = action_space, chunk, imagine
        self.max_bytes = int(max_message_mb * 2**20)

    def handshake(self) -> dict:
        if self.protocol == "vllm-omni":
            cam = self.spec.camera(next(iter(DROID_KEYS))) if _droid(self.spec) else self.spec.cameras[0]
            return {"image_resolution": [IMAGE_SIZE, IMAGE_SIZE] if _droid(self.spec) else [cam.height, cam.width],
                    "n_external_cameras": 1 if _droid(self.spec) else len(self.spec.cameras),
                    "needs_wrist_camera": _droid(self.spec), "needs_stereo_camera": False,
                    "needs_session_id": False, "action_space": self.action_space or self.spec.default_action}
        return {"embodiment": self.spec.name, "action_horizon": self.chunk, "server": "cosmos3-robot",
                "action_space": self.action_space or self.spec.default_action}

    def infer(self, session: dict, message) -> np.ndarray:
        """One observation -> the reply's (H, A) actions (in a worker thread)."""
        obs = checked_observation(self.spec, message)
        policy = session["policy"]
        if self.imagine is not None:
            targets, states = self.imagine(session, policy, obs, self.chunk)
        else:
            targets = np.asarray(policy.select_action(obs), np.float64)[None]
            states = np.asarray(obs["observation.state"], np.float64)[None]
        if _droid(self.spec):
            joints = states[:, self.spec.state.slices()["joint_positions"]]
            return wire_from_targets(self.spec, self.action_space, targets, joints)
        return np.asarray(targets, np.float32)

    async def handler(self, ws) -> None:
        session = {"policy": self.policy_factory()}
        session["policy"].reset(0)
        await ws.send(packb(self.handshake()))
        async for raw in ws:
            try:
                if isinstance(raw, str):
                    raise UserError("send msgpack bytes, not text")
                try:
                    message = unpackb(raw)
                except Exception as e:  # noqa: BLE001 (msgpack raises several kinds)
                    raise UserError(f"the message is not msgpack ({type(e).__name__}: {e})") from None
                if isinstance(message, dict) and (message.get("endpoint") == "reset" or "__ctrl__" in message):
                    seed = int(message.get("__episode_id__", 0)) if "__ctrl__" in message else 0
                    session["policy"].reset(seed)
                    session.pop("imagined", None)
                    await ws.send(packb({"status": "reset successful"} if self.protocol == "vllm-omni" else {}))
                    continue
                t0 = time.monotonic()
                actions = await asyncio.to_thread(self.infer, session, message)  # the loop serves others meanwhile
                if self.protocol == "vllm-omni":
                    await ws.send(packb(actions))
                else:
                    await ws.send(packb({"actions": actions, "server_timing": {"infer_ms": (time.monotonic() - t0) * 1e3}}))
            except UserError as e:
                if self.protocol == "vllm-omni":
                    await ws.send(packb({"type": "error", "message": str(e)}))
                    continue
                await ws.send(f"error: {e}")  # openpi's server: the error as a text frame, then close
                await ws.close()
                return
            except Exception:  # noqa: BLE001 (openpi's server sends the traceback as text, then closes)
                await ws.send(traceback.format_exc())
                await ws.close()
                return


async def _serve(server: PolicyServer, host: str, port: int, ready=None) -> None:
    import websockets.asyncio.server as ws_server

    def health(connection, request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return None

    async with ws_server.serve(server.handler, host, port, compression=None, max_size=server.max_bytes,
                               process_request=health) as s:
        if ready is not None:
            ready(s)
        await s.serve_forever()


def serve_policy(policy_factory, spec: EmbodimentSpec | str, host: str = "127.0.0.1", port: int = 8000,
                 chunk: int = 10, protocol: str = "openpi", action_space: str | None = None, imagine=None,
                 max_message_mb: float = 64.0) -> None:
    """Serve `policy_factory()` (a new `Policy` per connection) until interrupted."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    server = PolicyServer(policy_factory, spec, protocol, action_space, chunk, imagine, max_message_mb)
    asyncio.run(_serve(server, host, port))


class OpenPIPolicy:
    """A policy server of either flavour as a `Policy`: our observations go out in openpi's keys (openpi's DROID
    keys and nothing else, so any server reads them), the handshake says the action space and flavour, each
    reply's chunk is played for at most `open_loop_horizon` steps before the next query, converted to the env's
    joint-position targets at the state each step runs from."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, spec: EmbodimentSpec | str = "droid",
                 prompt: str | None = None, name: str | None = None, open_timeout: float = 30.0,
                 open_loop_horizon: int = 8, session_id: str | None = None):
        import websockets.sync.client

        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.uri = host if host.startswith("ws") else f"ws://{host}:{port}"
        self.prompt = prompt or self.spec.task
        self.name = name or f"openpi:{self.uri}"
        self.open_loop_horizon = int(open_loop_horizon)
        try:
            # entered as a context manager, as websockets 17 wants; `close` leaves it
            self.ws = websockets.sync.client.connect(self.uri, compression=None, max_size=None,
                                                     open_timeout=open_timeout).__enter__()
        except (OSError, TimeoutError) as e:
            raise Unreachable(f"{self.uri}: no openpi policy server there ({e}); start one, e.g. "
                              "`cosmos3-robot serve-policy --env droid --policy expert --port P`") from e
        self.metadata = unpackb(self.ws.recv())
        self.flavour = "vllm-omni" if "needs_wrist_camera" in self.metadata else "openpi"
        space = self.metadata.get("action_space", "joint_position" if self.flavour == "vllm-omni" else None)
        if _droid(self.spec):
            space = {"joint_pos": "joint_position", "joint_vel": "joint_velocity"}.get(space, space)
            if space is None:
                space = "joint_velocity"  # openpi's DROID servers (pi05_droid) answer velocities and say nothing
            if space not in WIRE_SPACES:
                raise UserError(f"{self.uri} answers action space {space!r}; this client converts "
                                f"{list(WIRE_SPACES)}")
        self.action_space = space
        self.session_id = session_id or (f"cosmos3-{id(self):x}" if self.metadata.get("needs_session_id") else None)
        self._queue: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        self._queue = []
        if self.metadata.get("server") == "cosmos3-robot" and self.flavour == "openpi":
            # our server keeps a policy per connection: openpi's episode marker gives the next episode a fresh one
            self._call({"__ctrl__": "episode_start", "__episode_id__": int(seed or 0)})
        if self.flavour == "vllm-omni":
            reply = self._call({"endpoint": "reset", **({"session_id": self.session_id} if self.session_id else {})})
            if not isinstance(reply, dict) or "error" in str(reply.get("type", "")):
                raise RuntimeError(f"{self.uri}: reset failed: {reply}")

    def _call(self, message: dict):
        self.ws.send(packb(message))
        reply = self.ws.recv()
        if isinstance(reply, str):
            raise RuntimeError(f"{self.uri}: the policy server failed:\n{reply}")
        reply = unpackb(reply)
        if isinstance(reply, dict) and reply.get("type") == "error":
            raise RuntimeError(f"{self.uri}: the policy server failed: {reply.get('message')}")
        return reply

    def infer(self, observation: dict) -> dict:
        message = to_openpi(self.spec, observation, self.prompt)
        if self.session_id:
            message["session_id"] = self.session_id
        reply = self._call(message)
        return {"actions": reply} if isinstance(reply, np.ndarray) else reply

    def select_action(self, observation: dict) -> np.ndarray:
        if not self._queue:
            actions = np.asarray(self.infer(observation)["actions"], np.float32)
            if actions.ndim != 2 or len(actions) == 0:
                raise UserError(f"{self.uri}: the action chunk came back with shape {actions.shape}; expected (H, A)")
            self._queue = list(actions[: self.open_loop_horizon])
        action = self._queue.pop(0)
        if not _droid(self.spec):
            return action
        joints = np.asarray(observation["observation.state"], np.float64)[self.spec.state.slices()["joint_positions"]]
        return target_from_wire(self.spec, self.action_space, action, joints).astype(np.float32)

    def close(self) -> None:
        self.ws.__exit__(None, None, None)
