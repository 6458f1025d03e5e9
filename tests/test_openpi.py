"""Policies over the wire by contract, against the real counterparts: openpi's own `WebsocketClientPolicy` and
`WebsocketPolicyServer` (openpi-client 0.1.2 and openpi-server 0.1.0 from the registry, in a venv of their own as
on a robot's computer: they pin numpy<2, the project needs numpy>=2) and vLLM-Omni 0.30.0's OpenPI endpoint code
(`RobotRealtimeConnection`, from its wheel) drive and serve `serve-policy` / `OpenPIPolicy`; openpi's DROID
example loop (its shape assert, clipping, gripper binarizing and velocity execution) runs the MuJoCo scene."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port

from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.serve.openpi import (OpenPIPolicy, from_openpi, packb, resize_with_pad, target_from_wire, to_openpi,
                                       unpackb, unpad, wire_from_targets)

CLIENT = """
import json, sys
import numpy as np
from openpi_client import websocket_client_policy
obs = np.load(sys.argv[3], allow_pickle=False)
client = websocket_client_policy.WebsocketClientPolicy(host=sys.argv[1], port=int(sys.argv[2]))
meta = client.get_server_metadata()
out = {}
for t in range(int(obs["n"])):
    o = {"observation/top": obs[f"image{t}"], "observation/state": obs[f"state{t}"], "prompt": "push"}
    out[f"a{t}"] = client.infer(o)["actions"]
np.savez(sys.argv[4], **out)
print(json.dumps(meta))
"""


def start(args, port):
    proc = subprocess.Popen([sys.executable, "-m", "cosmos3_robot.cli", "serve-policy", *args, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"})
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    raise TimeoutError("serve-policy did not come up")


@pytest.fixture(scope="module")
def openpi_venv(tmp_path_factory):
    """A venv with only openpi-client and openpi-server (and their numpy<2), from the registry: the one setup.sh
    built, else one made here."""
    built = Path(__file__).resolve().parents[1] / ".venv" / "openpi-venv" / "bin" / "python"
    if built.is_file() and subprocess.run([str(built), "-c", "import openpi_client, openpi_server"]).returncode == 0:
        return built
    root = tmp_path_factory.mktemp("openpi") / "venv"
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(root)], check=True)
    # openpi-client 0.1.2 imports typing_extensions without declaring it
    cmd = [str(root / "bin" / "pip"), "install", "-q", "--timeout", "20", "--retries", "1", "openpi-client==0.1.2",
           "openpi-server==0.1.0", "typing_extensions"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("the package registry did not answer within 300 s: openpi-client could not be installed")
    if res.returncode != 0:
        pytest.skip(f"openpi-client could not be installed from the registry: {res.stderr[-500:]}")
    return root / "bin" / "python"


def test_wire_format_and_image_round_trip():
    a = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5), "t": "hi"}
    b = unpackb(packb(a))
    np.testing.assert_array_equal(b["x"], a["x"])
    assert b["x"].dtype == np.float32
    assert b["s"] == 2.5 and b["t"] == "hi"
    img = np.random.default_rng(0).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    padded = resize_with_pad(img, 224, 224)
    assert padded.shape == (224, 224, 3) and not padded[:40].any()  # 320 wide -> 224 x 126, black bands
    back = unpad(padded, 180, 320)
    assert back.shape == img.shape and np.abs(back.astype(int) - img.astype(int)).mean() < 60
    spec = load_spec("droid")
    obs = {c.key: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    obs["observation.state"] = np.r_[np.arange(7) * 0.1 - 0.3, 1.0, np.zeros(6)].astype(np.float32)  # in limits
    obs["observation.state"][3] = -1.5
    o = to_openpi(spec, obs, "pick")
    assert o["observation/exterior_image_1_left"].shape == (224, 224, 3)
    np.testing.assert_array_equal(o["observation/joint_position"], obs["observation.state"][:7])
    np.testing.assert_array_equal(o["observation/gripper_position"], [1.0])
    back = from_openpi(spec, o)["observation.state"]  # the cartesian pose comes back from the joints
    np.testing.assert_array_equal(back[:8], obs["observation.state"][:8])
    assert np.isfinite(back).all() and np.abs(back[8:11]).max() > 0.05


def test_openpis_own_client_gets_the_policys_imagined_next_actions(openpi_venv, tmp_path):
    """A chunk's rows are the policy's real next actions: the first is its answer to the observation, the rest
    its answers along the rollout the learned simulator imagines (reproduced here in process)."""
    from cosmos3_robot.cli import policy_imaginer
    from cosmos3_robot.tasks import make_policy
    from cosmos3_robot.tasks.pusht import PushTRealEnv

    env = PushTRealEnv()
    observations = {}
    obs, _ = env.reset(seed=2)
    for t in range(3):
        observations[f"image{t}"], observations[f"state{t}"] = obs["observation.image"], obs["observation.state"]
        obs, *_ = env.step(np.array([200.0 + 20 * t, 300.0]))
    np.savez(tmp_path / "obs.npz", n=3, **observations)
    (tmp_path / "client.py").write_text(CLIENT)
    port = free_port()
    proc = start(["--env", "pusht", "--policy", "expert", "--chunk", "4"], port)
    try:
        res = subprocess.run([str(openpi_venv), str(tmp_path / "client.py"), "127.0.0.1", str(port),
                              str(tmp_path / "obs.npz"), str(tmp_path / "actions.npz")],
                             capture_output=True, text=True, timeout=120)
    finally:
        proc.terminate()
        proc.wait()
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["action_horizon"] == 4
    got = np.load(tmp_path / "actions.npz")
    policy = make_policy("pusht", "expert", 0)  # one policy for the connection, as the server keeps it
    policy.reset(0)
    imagine, session = policy_imaginer("pusht"), {}
    for t in range(3):
        o = {"observation.image": observations[f"image{t}"], "observation.state": observations[f"state{t}"]}
        want, _ = imagine(session, policy, o, 4)
        np.testing.assert_allclose(got[f"a{t}"], want.astype(np.float32), atol=1e-4)
    assert np.abs(np.diff(got["a0"], axis=0)).max() > 0  # not one action repeated


def test_openpi_policy_runs_the_franka_scene_against_serve_policy():
    from cosmos3_robot.eval import rollout
    from cosmos3_robot.tasks import make_real_env

    port = free_port()
    proc = start(["--env", "droid", "--policy", "expert"], port)
    try:
        policy = OpenPIPolicy("127.0.0.1", port, spec="droid")
        assert policy.metadata["embodiment"] == "droid" and policy.action_space == "joint_velocity"
        env = make_real_env("droid", max_episode_steps=20)
        actions = []
        res = rollout(env, policy, seed=0, on_step=lambda o, a, r, d, i: actions.append(a))
        policy.close()
    finally:
        proc.terminate()
        proc.wait()
    assert res["length"] == 20 and len(actions) == 20
    assert all(a.shape == (8,) and np.isfinite(a).all() for a in actions)  # joint_position + gripper
    assert np.abs(np.diff(np.stack(actions)[:, :7], axis=0)).max() > 1e-4  # the arm is commanded to move
    with pytest.raises(ConnectionError, match=r"ws://127.0.0.1:9: no openpi policy server"):
        OpenPIPolicy("127.0.0.1", 9, open_timeout=2)


# ---------------------------------------------------------------- the action contract

def test_joint_velocity_and_position_convert_exactly_at_the_control_rate():
    spec = load_spec("droid")
    rng = np.random.default_rng(0)
    joints = rng.uniform(-1, 1, (5, 7))
    targets = np.concatenate([joints + rng.uniform(-0.15, 0.15, (5, 7)), rng.integers(0, 2, (5, 1))], 1)
    wire = wire_from_targets(spec, "joint_velocity", targets, joints)
    np.testing.assert_allclose(wire[:, :7], (targets[:, :7] - joints) / 0.2, atol=1e-6)  # DROID's 0.2 rad per step
    back = np.stack([target_from_wire(spec, "joint_velocity", w, q) for w, q in zip(wire, joints)])
    np.testing.assert_allclose(back, targets, atol=1e-6)
    far = target_from_wire(spec, "joint_velocity", np.r_[np.full(7, 5.0), 0.7], joints[0])
    np.testing.assert_allclose(far, np.r_[joints[0] + 0.2, 1.0])  # clipped to [-1, 1]; gripper binarized
    np.testing.assert_array_equal(wire_from_targets(spec, "joint_position", targets, joints), targets.astype(np.float32))


# ---------------------------------------------------------------- openpi's DROID example, through openpi-client

EXAMPLE = """
import json, sys
import numpy as np
from openpi_client import websocket_client_policy
# openpi examples/droid/main.py's loop, one step per line of stdin: an .npz of the example's observation
open_loop_horizon, chunk, done = 8, None, 0
for line in sys.stdin:
    if line.strip() == "reset":
        # openpi-client 0.1.2 sends no episode marker and our scripted expert keeps a plan per episode: a new
        # connection per episode gives it a fresh policy (the example itself makes its client once)
        client = websocket_client_policy.WebsocketClientPolicy(host=sys.argv[1], port=int(sys.argv[2]))
        chunk, done = None, 0
        print("ok", flush=True)
        continue
    obs = dict(np.load(line.strip(), allow_pickle=False))
    if chunk is None or done >= open_loop_horizon:
        done = 0
        chunk = client.infer({**obs, "prompt": "pick up the cube and place it on the target"})["actions"]
        assert chunk.shape == (10, 8)
    action = chunk[done]
    done += 1
    action = np.concatenate([action[:-1], np.ones((1,)) if action[-1].item() > 0.5 else np.zeros((1,))])
    action = np.clip(action, -1, 1)
    print(json.dumps(action.tolist()), flush=True)
"""


def run_example_loop(python, port, seeds, tmp_path, max_steps=200):
    """The example's loop through openpi-client; its velocity actions executed as DROID's RobotEnv does."""
    from cosmos3_robot.tasks import make_real_env

    spec = load_spec("droid")
    sl = spec.state.slices()
    (tmp_path / "example.py").write_text(EXAMPLE)
    client = subprocess.Popen([str(python), str(tmp_path / "example.py"), "127.0.0.1", str(port)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    results = []
    try:
        for seed in seeds:
            env = make_real_env("droid", max_episode_steps=max_steps)
            obs, _ = env.reset(seed=seed)
            client.stdin.write("reset\n"), client.stdin.flush()
            assert client.stdout.readline().strip() == "ok"
            success = False
            for t in range(max_steps):
                state = obs["observation.state"]
                path = tmp_path / "obs.npz"
                np.savez(path, **{
                    "observation/exterior_image_1_left": resize_with_pad(obs["observation.images.exterior_1_left"], 224, 224),
                    "observation/wrist_image_left": resize_with_pad(obs["observation.images.wrist_left"], 224, 224),
                    "observation/joint_position": state[sl["joint_positions"]],
                    "observation/gripper_position": state[sl["gripper_position"]]})
                client.stdin.write(f"{path}\n"), client.stdin.flush()
                velocity = np.asarray(json.loads(client.stdout.readline()))
                target = target_from_wire(spec, "joint_velocity", velocity, state[sl["joint_positions"]])
                obs, _, terminated, truncated, info = env.step(target)
                if terminated or truncated:
                    success = bool(info.get("is_success", terminated))
                    break
            results.append(success)
            env.close()
    finally:
        client.stdin.close()
        client.wait(30)
    return results


def in_process_successes(seeds):
    from cosmos3_robot.eval import rollout
    from cosmos3_robot.tasks import make_policy, make_real_env

    return [rollout(make_real_env("droid"), make_policy("droid", "expert", 0), seed=s)["success"] for s in seeds]


@pytest.mark.parametrize("seeds", [pytest.param([1], id="1-seed"),
                                   pytest.param(list(range(10)), id="10-seeds", marks=pytest.mark.slow)])
def test_openpis_droid_example_picks_and_places_with_the_served_expert(openpi_venv, tmp_path, seeds):
    port = free_port()
    proc = start(["--env", "droid", "--policy", "expert", "--action-space", "joint_velocity"], port)
    try:
        wire = run_example_loop(openpi_venv, port, seeds, tmp_path)
    finally:
        proc.terminate()
        proc.wait()
    local = in_process_successes(seeds)
    assert sum(wire) >= 0.8 * sum(local) and sum(local) > 0, (wire, local)


# ---------------------------------------------------------------- vLLM-Omni's OpenPI endpoint, both ways

def test_openpi_policy_drives_vllm_omnis_own_endpoint_code():
    """vLLM-Omni's RobotRealtimeConnection (its wheel's code) serves a Cosmos3-DROID-like policy (joint_position
    chunks of 32, PolicyServerConfig as in deploy/cosmos3_policy_droid.yaml): OpenPIPolicy reads the handshake,
    sends the session id it asks for, resets per episode, reads bare arrays and plays 8 of each chunk."""
    import threading

    import uvicorn
    from fastapi import FastAPI, WebSocket

    import vllm_omni_ref

    ref = vllm_omni_ref.load()
    seen = {"infer": [], "reset": 0}
    config = ref.openpi_serving.PolicyServerConfig({
        "image_resolution": [540, 640], "n_external_cameras": 2, "needs_wrist_camera": True,
        "needs_stereo_camera": False, "needs_session_id": True, "action_space": "joint_position"})

    class Serving:
        policy_server_config = config

        def reset(self, obs):
            seen["reset"] += 1

        async def infer(self, obs, session_id, reset):
            seen["infer"].append((session_id, sorted(obs)))
            q = np.asarray(obs["observation/joint_position"], np.float32)
            return np.stack([np.r_[q + 0.01 * (h + 1), 1.0] for h in range(32)]).astype(np.float32)

    app = FastAPI()

    @app.websocket("/v1/realtime/robot/openpi")
    async def endpoint(websocket: WebSocket):
        await ref.openpi_connection.RobotRealtimeConnection(websocket, Serving()).handle_connection()

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    time.sleep(1.5)
    try:
        policy = OpenPIPolicy(f"ws://127.0.0.1:{port}/v1/realtime/robot/openpi", spec="droid")
        assert policy.flavour == "vllm-omni" and policy.action_space == "joint_position" and policy.session_id
        spec = load_spec("droid")
        obs = {c.key: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
        obs["observation.state"] = np.zeros(14, np.float32)
        policy.reset(0)
        actions = [policy.select_action(obs) for _ in range(9)]
        policy.close()
    finally:
        server.should_exit = True
    assert seen["reset"] == 1 and len(seen["infer"]) == 2  # 8 of the chunk played, then a new query
    assert seen["infer"][0][0] == policy.session_id
    assert "observation/exterior_image_1_left" in seen["infer"][0][1]
    np.testing.assert_allclose(actions[0], np.r_[np.full(7, 0.01), 1.0], atol=1e-6)
    np.testing.assert_allclose(actions[7], np.r_[np.full(7, 0.08), 1.0], atol=1e-6)


def test_vllm_omnis_client_side_drives_serve_policy_in_its_protocol(tmp_path):
    """Messages packed and unpacked by vLLM-Omni's own connection functions: the PolicyServerConfig handshake,
    bare-array replies of (10, 8) joint positions, the reset endpoint, and {"type": "error"} for bad input."""
    import websockets.sync.client

    import vllm_omni_ref

    ref = vllm_omni_ref.load()
    pack, unpack = ref.openpi_connection._pack, ref.openpi_connection._unpack
    port = free_port()
    proc = start(["--env", "droid", "--policy", "expert", "--protocol", "vllm-omni"], port)
    try:
        from cosmos3_robot.tasks import make_real_env

        obs, _ = make_real_env("droid").reset(seed=0)
        message = to_openpi(load_spec("droid"), obs, "pick")
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            handshake = unpack(ws.recv())
            assert handshake["action_space"] == "joint_position" and handshake["needs_wrist_camera"] is True
            ref.openpi_serving.PolicyServerConfig(handshake)  # its own config type holds it
            ws.send(pack({"endpoint": "reset"}))
            assert unpack(ws.recv()) == {"status": "reset successful"}
            ws.send(pack(message))
            chunk = unpack(ws.recv())
            assert isinstance(chunk, np.ndarray) and chunk.shape == (10, 8) and np.isfinite(chunk).all()
            ws.send(pack({**message, "observation/joint_position": np.full(7, np.nan, np.float32)}))
            err = unpack(ws.recv())
            assert err["type"] == "error" and "observation/joint_position" in err["message"]
            ws.send(b"\xc1 not msgpack")
            assert "not msgpack" in unpack(ws.recv())["message"]
    finally:
        proc.terminate()
        proc.wait()


# ---------------------------------------------------------------- validation, size limit, concurrency

VALID_STATE = np.r_[0.0, -0.5, 0.0, -2.0, 0.0, 1.5, 0.0, 0.0, np.zeros(6)].astype(np.float32)  # inside the limits

def test_bad_observations_get_openpis_error_frame_and_oversize_messages_are_refused():
    import websockets.sync.client
    from websockets.exceptions import ConnectionClosed

    spec = load_spec("droid")
    obs = {c.key: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    obs["observation.state"] = VALID_STATE
    good = to_openpi(spec, obs, "pick")
    port = free_port()
    proc = start(["--env", "droid", "--policy", "random", "--chunk", "1", "--max-message-mb", "2"], port)
    try:
        bad = [("observation/joint_position", np.full(7, np.nan, np.float32), "finite"),
               ("observation/joint_position", np.zeros(5, np.float32), "expected 7"),
               ("observation/joint_position", np.full(7, 1e9, np.float32), "outside the robot's limits"),
               ("observation/wrist_image_left", np.zeros((224, 224), np.float32), "(H, W, 3) uint8")]
        for key, value, needle in bad:
            with websockets.sync.client.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
                ws.recv()
                ws.send(packb({**good, key: value}))
                reply = ws.recv()
                assert isinstance(reply, str) and key in reply and needle in reply, reply
        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            ws.recv()
            ws.send(packb({**good, "observation/wrist_image_left": np.zeros((1100, 1100, 3), np.uint8)}))  # 3.6 MB
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv()
            assert closed.value.rcvd.code == 1009  # message too big
    finally:
        proc.terminate()
        proc.wait()


def test_a_50_mb_request_does_not_stall_another_client():
    import threading

    import websockets.sync.client

    spec = load_spec("droid")
    obs = {c.key: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    obs["observation.state"] = VALID_STATE
    small = to_openpi(spec, obs, "pick")
    big = {**small, "observation/exterior_image_1_left": np.zeros((4000, 4096, 3), np.uint8)}  # 49 MB
    port = free_port()
    proc = start(["--env", "droid", "--policy", "random", "--chunk", "1"], port)
    try:
        def send_big():
            with websockets.sync.client.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
                ws.recv()
                ws.send(packb(big))
                ws.recv()

        with websockets.sync.client.connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
            ws.recv()
            ws.send(packb(small)), ws.recv()  # warm
            alone = []
            for _ in range(3):
                t0 = time.monotonic()
                ws.send(packb(small)), ws.recv()
                alone.append(time.monotonic() - t0)
            other = threading.Thread(target=send_big)
            other.start()
            time.sleep(0.3)  # the big one is arriving and being decoded
            t0 = time.monotonic()
            ws.send(packb(small)), ws.recv()
            delay = time.monotonic() - t0 - min(alone)
            other.join(60)
        assert delay < 1.0, delay
    finally:
        proc.terminate()
        proc.wait()


OPENPI_SERVER = """
import sys
import numpy as np
from openpi_client import base_policy
from openpi_server.websocket_policy_server import WebsocketPolicyServer

class Velocities(base_policy.BasePolicy):  # pi05_droid's reply shape: 10 x (7 joint velocities + gripper)
    def infer(self, obs):
        assert obs["observation/joint_position"].shape == (7,) and "prompt" in obs
        return {"actions": np.tile(np.r_[np.full(7, 0.5), 0.9], (10, 1)).astype(np.float32)}

WebsocketPolicyServer(Velocities(), host="127.0.0.1", port=int(sys.argv[1])).serve_forever()
"""


def test_openpi_policy_drives_openpis_own_server(openpi_venv, tmp_path):
    """openpi-server 0.1.0's WebsocketPolicyServer (a pi05_droid-shaped test policy, no action_space in its
    metadata): OpenPIPolicy reads the dict reply, takes DROID's joint_velocity and turns each row into a
    joint-position target from the state it runs at, re-querying after 8."""
    import httpx

    (tmp_path / "server.py").write_text(OPENPI_SERVER)
    port = free_port()
    proc = subprocess.Popen([str(openpi_venv), str(tmp_path / "server.py"), str(port)], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        policy = OpenPIPolicy("127.0.0.1", port, spec="droid")
        assert policy.flavour == "openpi" and policy.action_space == "joint_velocity"
        spec = load_spec("droid")
        obs = {c.key: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
        obs["observation.state"] = np.r_[np.full(7, 0.1), 0.0, np.zeros(6)].astype(np.float32)
        policy.reset(0)
        a = policy.select_action(obs)
        policy.close()
    finally:
        proc.terminate()
        proc.wait()
    np.testing.assert_allclose(a, np.r_[np.full(7, 0.1 + 0.5 * 0.2), 1.0], atol=1e-6)
