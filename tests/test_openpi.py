"""openpi's policy protocol both ways: openpi's own `WebsocketClientPolicy` (the `openpi-client` package from
the registry, in a venv of its own as on a robot's computer: it pins numpy<2, the project needs numpy>=2)
drives `cosmos3-robot serve-policy` and gets the in-process policy's actions; our `OpenPIPolicy` runs an
episode of the Franka cube scene against it."""

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
from cosmos3_robot.serve.openpi import OpenPIPolicy, from_openpi, packb, resize_with_pad, to_openpi, unpackb, unpad

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
    """A venv with only openpi-client (and its numpy<2), from the registry."""
    root = tmp_path_factory.mktemp("openpi") / "venv"
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(root)], check=True)
    # openpi-client 0.1.2 imports typing_extensions without declaring it
    cmd = [str(root / "bin" / "pip"), "install", "-q", "--timeout", "20", "--retries", "1", "openpi-client==0.1.2",
           "typing_extensions"]
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
    obs["observation.state"] = np.arange(14, dtype=np.float32)
    o = to_openpi(spec, obs, "pick")
    assert o["observation/exterior_image_1_left"].shape == (224, 224, 3)
    np.testing.assert_array_equal(o["observation/joint_position"], np.arange(7))
    np.testing.assert_array_equal(o["observation/gripper_position"], [7])
    np.testing.assert_array_equal(from_openpi(spec, o)["observation.state"], obs["observation.state"])


def test_openpis_own_client_gets_the_in_process_actions(openpi_venv, tmp_path):
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
    for t in range(3):
        o = {"observation.image": observations[f"image{t}"], "observation.state": observations[f"state{t}"]}
        want = np.stack([policy.select_action(o) for _ in range(4)]).astype(np.float32)
        np.testing.assert_array_equal(got[f"a{t}"], want)


def test_openpi_policy_runs_the_franka_scene_against_serve_policy():
    from cosmos3_robot.eval import rollout
    from cosmos3_robot.tasks import make_real_env

    port = free_port()
    proc = start(["--env", "droid", "--policy", "expert", "--chunk", "8"], port)
    try:
        policy = OpenPIPolicy("127.0.0.1", port, spec="droid")
        assert policy.metadata["embodiment"] == "droid"
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
