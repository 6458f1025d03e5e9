"""The served learned simulator: `cosmos3-robot serve` (vLLM-Omni's Cosmos 3 video API, forward dynamics) in
a subprocess, driven through `RemoteBackend` (httpx), steps exactly as the in-process env; normalization
happens once; errors name the URL and the field and leave the env usable."""

import json
import subprocess
import sys
import time

import gymnasium as gym
import httpx
import numpy as np
import pytest

from conftest import free_port

from cosmos3_robot.backends import load_backend
from cosmos3_robot.backends.remote import RemoteBackend, RemoteError
from cosmos3_robot.datasets.video import mp4_bytes
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv

START = "cosmos3_robot/PushTReal-v0"


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cosmos3_robot.cli", "serve", "--checkpoint", "pusht_tower",
                             "--port", str(port), "--policy", "expert"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            httpx.get(url + "/healthz")
            break
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait()


def run(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, False, False)]
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append((obs, r, term, trunc))
    return out


def assert_same(a, b):
    for t, ((oa, ra, ta, tra), (ob, rb, tb, trb)) in enumerate(zip(a, b)):
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=f"step {t} {k}")
        assert (ra, ta, tra) == (rb, tb, trb), t


def test_remote_env_steps_exactly_as_the_in_process_env_for_50_steps(server):
    actions = np.random.default_rng(0).uniform(0, 512, (50, 2))
    local = LearnedEnv(checkpoint="pusht_tower", start=START, max_episode_steps=300)
    remote = gym.make("cosmos3_robot/PushT-v0", backend="remote", url=server).unwrapped
    assert isinstance(remote.backend, RemoteBackend) and not remote.backend.stateless
    assert_same(run(local, 3, actions), run(remote, 3, actions))  # lossless video: frames identical too


def test_batched_stateless_and_model_space_clients_agree(server):
    actions = np.random.default_rng(1).uniform(0, 512, (6, 2))
    local = LearnedVectorEnv(3, load_backend("pusht_tower"), START)
    ref = run(local, [4, 5, 6], np.repeat(actions[:, None], 3, 1))
    for kw in ({}, {"action_space": "model"}, {"stateless": True}):
        remote = LearnedVectorEnv(3, RemoteBackend(server, **kw), START)
        got = run(remote, [4, 5, 6], np.repeat(actions[:, None], 3, 1))
        if kw.get("stateless"):  # each step restarts from the frames (as with a plain vLLM-Omni server)
            assert all(np.isfinite(o["observation.state"]).all() and o["observation.image"].shape == (3, 96, 96, 3)
                       for o, *_ in got)
        else:  # a "model" action is unscaled exactly once, on the server
            for (oa, ra, *_), (ob, rb, *_) in zip(ref, got):
                np.testing.assert_allclose(oa["observation.state"], ob["observation.state"], atol=1e-3)
                np.testing.assert_allclose(ra, rb, atol=1e-4)


def test_scaling_twice_would_show(server):
    """The same model-space numbers sent as raw units land somewhere else: the flag is what decides."""
    a = np.array([[400.0, 100.0]])
    b1, b2 = RemoteBackend(server, action_space="model"), RemoteBackend(server)
    env1, env2 = LearnedEnv(b1, START), LearnedEnv(b2, START)
    env1.reset(seed=0), env2.reset(seed=0)
    from cosmos3_robot.backends.remote import to_model

    s1 = env1.step(a[0])[0]["observation.state"]
    s2 = env2.step(np.clip(to_model(b2.spec, a)[0], 0, 512))[0]["observation.state"]
    assert np.abs(s1 - s2).max() > 10


def test_errors_name_the_url_and_field_and_the_env_survives_a_retry(server):
    with pytest.raises(ConnectionError, match=r"http://127.0.0.1:9/v1/models: cannot reach"):
        RemoteBackend("http://127.0.0.1:9")
    form = {"model": "pusht_tower", "num_frames": "2", "extra_params": json.dumps(
        {"action_mode": "forward_dynamics", "raw_action_dim": 3, "action_chunk_size": 1, "action": [[1, 2, 3]]})}
    res = httpx.post(server + "/v1/videos/sync", data=form)
    assert res.status_code == 400 and res.json()["detail"]["field"] == "extra_params.raw_action_dim"
    form["extra_params"] = json.dumps({"action_mode": "forward_dynamics", "action_chunk_size": 1,
                                       "action": [[1, 2]], "session_id": "nobody"})
    res = httpx.post(server + "/v1/videos/sync", data=form)
    assert res.status_code == 404 and res.json()["detail"]["field"] == "extra_params.session_id"
    form["extra_params"] = json.dumps({"action_mode": "forward_dynamics", "action_chunk_size": 3, "action": [[1, 2]]})
    res = httpx.post(server + "/v1/videos/sync", data=form,
                     files={"input_reference": ("c.mp4", mp4_bytes(np.zeros((1, 96, 96, 3), np.uint8), 10), "video/mp4")})
    assert res.status_code == 400 and res.json()["detail"]["field"] == "extra_params.action_chunk_size"

    backend = RemoteBackend(server)
    env, local = LearnedEnv(backend, START), LearnedEnv(checkpoint="pusht_tower", start=START)
    env.reset(seed=7), local.reset(seed=7)
    a = np.array([300.0, 200.0])
    np.testing.assert_array_equal(env.step(a)[0]["observation.state"], local.step(a)[0]["observation.state"])
    good = backend.client
    backend.client = httpx.Client(base_url=server, timeout=1e-6)
    with pytest.raises(TimeoutError, match=r"/v1/videos/sync: no reply within"):
        env.step(a)
    backend.client = good  # the retry continues the same episode as if nothing had happened
    ob, oa = env.step(a)[0], local.step(a)[0]
    np.testing.assert_array_equal(ob["observation.image"], oa["observation.image"])
    with pytest.raises(RemoteError, match=r"answered 404: field model"):
        backend._request("POST", "/v1/videos/sync", data={**form, "model": "cosmos3"})


def test_policy_job_returns_the_action_chunk_and_the_imagined_rollout(server):
    """vLLM-Omni's async policy job: POST /v1/videos -> id; GET /v1/videos/{id} -> action {data, shape, dtype,
    raw_action_dim, domain_id}; GET .../content -> the rollout the model imagines for that chunk."""
    import cv2

    from cosmos3_robot.datasets.video import frames_from_mp4
    from cosmos3_robot.tasks import make_policy
    from cosmos3_robot.tasks.pusht import PushTRealEnv

    obs, _ = PushTRealEnv().reset(seed=11)
    png = cv2.imencode(".png", obs["observation.image"][:, :, ::-1])[1].tobytes()
    form = {"model": "pusht_tower", "prompt": "push the T", "num_frames": "5", "extra_params": json.dumps(
        {"action_mode": "policy", "domain_name": "pusht", "action_chunk_size": 4,
         "state": [obs["observation.state"].tolist()]})}
    job = httpx.post(server + "/v1/videos", data=form, files={"input_reference": ("f.png", png, "image/png")}).json()
    status = httpx.get(f"{server}/v1/videos/{job['id']}").json()
    assert status["status"] == "completed" and status["action"]["shape"] == [4, 2]
    assert status["action"]["raw_action_dim"] == 2 and status["action"]["domain_id"] == 0
    policy = make_policy("pusht", "expert", 0)
    policy.reset(0)
    want = np.stack([policy.select_action(obs) for _ in range(4)])
    np.testing.assert_allclose(np.reshape(status["action"]["data"], (4, 2)), want, atol=1e-4)
    video = frames_from_mp4(httpx.get(f"{server}/v1/videos/{job['id']}/content").content)
    assert video.shape == (5, 96, 96, 3)
    np.testing.assert_array_equal(video[0], obs["observation.image"])  # it opens with the given frame
    bad = httpx.post(server + "/v1/videos", data={**form, "extra_params": json.dumps({"action_mode": "inverse_dynamics"})},
                     files={"input_reference": ("f.png", png, "image/png")})
    assert bad.status_code == 400 and bad.json()["detail"]["field"] == "extra_params.action_mode"
