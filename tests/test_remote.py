"""The served learned simulator against vLLM-Omni's own code (0.30.0, loaded by `vllm_omni_ref`): `cosmos3-robot
serve` as a drop-in for vLLM-Omni's Cosmos 3 video API, and `RemoteBackend` driving both it (stateful) and a fake
Cosmos 3 that parses every request with vLLM-Omni's request model and action helpers (stateless)."""

import json
import subprocess
import sys
import time

import cv2
import gymnasium as gym
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import vllm_omni_ref
from conftest import free_port
from fake_cosmos3 import MODEL, Running, create_fake

from cosmos3_robot.backends import load_backend
from cosmos3_robot.backends.remote import RemoteBackend, RemoteError, to_model
from cosmos3_robot.datasets.video import frames_from_mp4, mp4_bytes
from cosmos3_robot.serve.video_api import ServeLimits, create_app
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv

START = "cosmos3_robot/PushTReal-v0"
SERVED = "nvidia/Cosmos3-Nano"  # served under the recipe's model name, so its requests run unchanged but for the domain


@pytest.fixture(scope="module")
def ref():
    return vllm_omni_ref.load()


def start_server(*args):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cosmos3_robot.cli", "serve", "--checkpoint", "pusht_tower",
                             "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            httpx.get(url + "/health")
            return proc, url
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    raise RuntimeError("serve did not start")


@pytest.fixture(scope="module")
def server():
    proc, url = start_server("--policy", "expert", "--served-model-name", SERVED)
    yield url
    proc.terminate()
    proc.wait()


@pytest.fixture(scope="module")
def pusht_app():
    return create_app(load_backend("pusht_tower"), SERVED, policy_factory=_expert,
                      limits=ServeLimits(max_num_frames=9, max_queue=4))


def _expert():
    from cosmos3_robot.tasks import make_policy

    return make_policy("pusht", "expert", 0)


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


def real_frame(seed=11):
    from cosmos3_robot.tasks.pusht import PushTRealEnv

    return PushTRealEnv().reset(seed=seed)[0]


def finished_job(get, video_id: str, tries: int = 600, pause: float = 0.05) -> dict:
    """Poll GET /v1/videos/{id} (`get`: httpx.get on a URL prefix, or a TestClient's get) until the job ends."""
    for _ in range(tries):
        status = get(f"/v1/videos/{video_id}").json()
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(pause)
    return status


def check_request(ref, form: dict, files) -> dict:
    """A request as vLLM-Omni reads it: its form model, action mode, domain, action tensor and frame contract."""
    extra = json.loads(form["extra_params"])
    assert isinstance(extra, dict)
    req = ref.videos.VideoGenerationRequest(**{**form, "extra_params": extra})
    vp = req.resolve_video_params()
    mode = ref.action.normalize_action_mode(extra["action_mode"])
    domain = ref.action.resolve_domain_id(domain_id=extra.get("domain_id"), domain_name=extra.get("domain_name"),
                                          require_explicit=True)
    action = ref.action.load_action_tensor(extra["action"])
    assert ref.action.action_start_frame_offset(mode, action.shape[0], vp.num_frames) == 1
    assert extra["raw_action_dim"] == action.shape[1] and extra["action_chunk_size"] == action.shape[0]
    return {"domain": domain, "size": (vp.width, vp.height), "num_frames": vp.num_frames, "files": files}


def capture(backend, ref) -> list:
    seen, send = [], backend._request

    def spy(method, path, **kw):
        if path == "/v1/videos/sync":
            seen.append(check_request(ref, kw["data"], kw.get("files")))
        return send(method, path, **kw)

    backend._request = spy
    return seen


# ---------------------------------------------------------------- our client, our server (stateful)

def test_remote_env_steps_exactly_as_the_in_process_env_for_50_steps(server, ref):
    actions = np.random.default_rng(0).uniform(0, 512, (50, 2))
    local = LearnedEnv(checkpoint="pusht_tower", start=START, max_episode_steps=300)
    remote = gym.make("cosmos3_robot/PushT-v0", backend="remote", url=server).unwrapped
    assert isinstance(remote.backend, RemoteBackend) and not remote.backend.stateless
    seen = capture(remote.backend, ref)  # and every request it sends passes vLLM-Omni's own validation
    assert_same(run(local, 3, actions), run(remote, 3, actions))  # lossless video: frames identical too
    assert len(seen) == 50 and {s["domain"] for s in seen} == {ref.action.EMBODIMENT_TO_DOMAIN_ID["pusht"]}


def test_chunks_of_actions_travel_in_one_request_and_match_single_steps(server):
    actions = np.random.default_rng(2).uniform(0, 512, (12, 2))
    one = run(LearnedEnv(RemoteBackend(server), START), 5, actions)
    env = LearnedEnv(RemoteBackend(server), START)
    env.reset(seed=5)
    obs, *_ = env.step(actions[:8])  # one request of 8 actions, then 4
    obs2, *_ = env.step(actions[8:])
    np.testing.assert_array_equal(obs["observation.state"], one[8][0]["observation.state"])
    np.testing.assert_array_equal(obs2["observation.image"], one[12][0]["observation.image"])
    assert env._session.data["steps"][0] == 2  # two requests


def test_batched_stateless_and_model_scale_clients_agree(server):
    actions = np.random.default_rng(1).uniform(0, 512, (6, 2))
    local = LearnedVectorEnv(3, load_backend("pusht_tower"), START)
    ref_run = run(local, [4, 5, 6], np.repeat(actions[:, None], 3, 1))
    for kw in ({}, {"action_scale": "model"}):
        got = run(LearnedVectorEnv(3, RemoteBackend(server, **kw), START), [4, 5, 6], np.repeat(actions[:, None], 3, 1))
        for (oa, ra, *_), (ob, rb, *_) in zip(ref_run, got):  # a "model" action is unscaled exactly once, on the server
            np.testing.assert_allclose(oa["observation.state"], ob["observation.state"], atol=1e-3)
            np.testing.assert_allclose(ra, rb, atol=1e-4)


def test_a_vector_env_steps_its_sessions_in_one_request_raw_or_mp4(server, ref):
    """Started sessions of a vector env travel in one /v1/sessions/step request; frames come back raw (same host)
    or as one lossless MP4, and either way the rollout is the in-process one's."""
    actions = np.random.default_rng(3).uniform(0, 512, (5, 3, 2))
    local = run(LearnedVectorEnv(3, load_backend("pusht_tower"), START), [1, 2, 3], actions)
    for frames in ("raw", "mp4"):
        backend = RemoteBackend(server, frames=frames)
        seen = capture(backend, ref)  # the sessions' starts are vLLM-Omni requests, checked by its own code
        paths = []
        send = backend._request
        backend._request = lambda method, path, **kw: paths.append(path) or send(method, path, **kw)
        assert backend.frames == frames and backend.session_step == "/v1/sessions/step"
        got = run(LearnedVectorEnv(3, backend, START), [1, 2, 3], actions)
        for t, ((oa, ra, *_), (ob, rb, *_)) in enumerate(zip(local, got)):
            np.testing.assert_array_equal(oa["observation.image"], ob["observation.image"], err_msg=f"step {t}")
            np.testing.assert_array_equal(oa["observation.state"], ob["observation.state"])
            np.testing.assert_array_equal(ra, rb)
        # the start: one vLLM-Omni-shaped request per session; then one request per step for all three
        assert paths.count("/v1/videos/sync") == 3 and paths.count("/v1/sessions/step") == 4 and len(seen) == 3
    assert RemoteBackend(server).frames == "raw"  # auto: raw to a server on this host


def test_a_batch_request_is_checked_field_by_field_and_a_retry_is_not_stepped_twice(pusht_app):
    obs = real_frame(5)
    mp4 = mp4_bytes(obs["observation.image"][None], 10)
    ep = {"action_mode": "forward_dynamics", "action": [[100.0, 100.0]], "session_id": "new",
          "state": [obs["observation.state"].tolist()]}
    with TestClient(pusht_app) as c:
        sids = [c.post("/v1/videos/sync", data={"prompt": "p", "extra_params": json.dumps(ep)},
                       files={"input_reference": ("c.mp4", mp4)}).headers["x-cosmos3-robot-session"] for _ in range(2)]

        def step(body):
            return c.post("/v1/sessions/step", json=body)

        def param(res):
            return res.status_code, res.json()["error"]["param"]

        a = [[300.0, 200.0]]
        assert param(step({"sessions": [{"id": sids[0], "action": [[1.0, 2.0, 3.0]]}]})) == (400, "sessions[0].action")
        assert param(step({"sessions": [{"id": sids[0], "action": a}, {"id": sids[0], "action": a}]})) == \
            (400, "sessions[1].id")
        assert param(step({"sessions": [{"id": sids[0], "action": a}, {"id": sids[1], "action": a * 2}]})) == \
            (400, "sessions[1].action")
        nan = json.dumps({"sessions": [{"id": sids[0], "action": [[float("nan"), 1.0]]}]})  # Python's json writes NaN
        assert param(c.post("/v1/sessions/step", content=nan)) == (400, "sessions[0].action")
        assert param(step({"sessions": [{"id": sids[0], "action": a}], "frames": "gif"})) == (400, "frames")
        assert param(step({"sessions": [{"id": "nobody", "action": a}]})) == (404, "extra_params.session_id")
        assert param(step({"sessions": [{"id": sids[0], "step": 5, "action": a}]})) == (409, "sessions[0].step")
        assert param(step({"sessions": [{"id": s, "action": a * 5} for s in sids]})) == (400, "sessions")  # 10 > 9
        assert c.post("/v1/sessions/step", content=b"{not json").status_code == 400

        body = {"frames": "raw", "sessions": [{"id": s, "step": 1, "action": a} for s in sids]}
        first, again = step(body), step(body)  # a retry of the request just served: the same reply, no step
        assert first.status_code == again.status_code == 200 and first.content == again.content
        assert [s["steps"] for s in json.loads(first.content[:int(first.headers["x-cosmos3-robot-json-bytes"])])[
            "sessions"]] == [2, 2]
        assert c.get(f"/v1/sessions/{sids[0]}").json()["steps"] == 2
        nxt = step({**body, "sessions": [{"id": s, "step": 2, "action": a} for s in sids]})
        assert nxt.status_code == 200 and nxt.content != first.content


def test_the_server_steps_the_sessions_of_waiting_requests_in_one_call():
    """Sessions of several requests join one backend call, and each steps as it would alone (its noise is its own)."""
    import threading

    from cosmos3_robot.backends.base import Context
    from cosmos3_robot.serve.batcher import StepBatcher, _Waiting

    backend = load_backend("pusht_tower")
    obs = real_frame(6)
    ctx = Context({"top": obs["observation.image"][None, None]}, obs["observation.state"][None, None].astype(float))
    calls = []
    step = backend.step
    backend.step = lambda session, actions: calls.append(len(actions)) or step(session, actions)
    batcher = StepBatcher(backend, threading.Lock())
    rng = np.random.default_rng(4)
    acts = rng.uniform(0, 512, (4, 1, 2))
    alone = []
    for i in range(4):
        s = backend.reset(ctx, seed=[10 + i])
        alone.append(backend.step(s, acts[i]))
    calls.clear()
    sessions = [backend.reset(ctx, seed=[10 + i]) for i in range(4)]
    items = [_Waiting(sessions[:3], list(acts[:3])), _Waiting(sessions[3:], list(acts[3:]))]
    batcher._serve(items)  # two requests waiting at once: one call
    assert calls == [4]
    got = items[0].result + items[1].result
    for a, b in zip(alone, got):
        np.testing.assert_allclose(a.state, b.state, atol=1e-3)
        np.testing.assert_allclose(a.frames["top"].astype(float), b.frames["top"].astype(float), atol=2)
    assert [len(s) for s in sessions] == [1, 1, 1, 1] and [int(s.data["t"][0]) for s in sessions] == [1, 1, 1, 1]
    bad = _Waiting([backend.reset(ctx, seed=[1])], [np.zeros((1, 7))])  # a bad request fails alone
    good = _Waiting([backend.reset(ctx, seed=[2])], [acts[0]])
    batcher._serve([bad, good])
    assert bad.error is not None and good.error is None and good.result is not None
    before = batcher.rows
    threads = [threading.Thread(target=lambda i=i: batcher.step([sessions[i]], [acts[i]])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert batcher.rows - before == 4 and all(int(s.data["t"][0]) == 2 for s in sessions)
    batcher.close()


def test_scaling_twice_would_show(server):
    """The same model-scale numbers sent as raw units land somewhere else: the flag is what decides."""
    a = np.array([[400.0, 100.0]])
    b1, b2 = RemoteBackend(server, action_scale="model"), RemoteBackend(server)
    env1, env2 = LearnedEnv(b1, START), LearnedEnv(b2, START)
    env1.reset(seed=0), env2.reset(seed=0)
    s1 = env1.step(a[0])[0]["observation.state"]
    s2 = env2.step(np.clip(to_model(b2.action, a)[0], 0, 512))[0]["observation.state"]
    assert np.abs(s1 - s2).max() > 10


def test_errors_name_the_url_and_field_and_the_env_survives_a_retry(server):
    with pytest.raises(ConnectionError, match=r"http://127.0.0.1:9/v1/models: cannot reach"):
        RemoteBackend("http://127.0.0.1:9")
    ep = {"action_mode": "forward_dynamics", "raw_action_dim": 3, "action_chunk_size": 1, "action": [[1, 2, 3]]}
    res = httpx.post(server + "/v1/videos/sync", data={"prompt": "p", "num_frames": "2", "extra_params": json.dumps(ep)})
    assert res.status_code == 400 and res.json()["error"]["param"] == "extra_params.raw_action_dim"
    ep = {"action_mode": "forward_dynamics", "action": [[1, 2]], "session_id": "nobody"}
    res = httpx.post(server + "/v1/videos/sync", data={"prompt": "p", "extra_params": json.dumps(ep)})
    assert res.status_code == 404 and res.json()["error"]["param"] == "extra_params.session_id"

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
    with pytest.raises(RemoteError, match=r"answered 400: model: Model mismatch"):
        backend._request("POST", "/v1/videos/sync", data={"prompt": "p", "model": "cosmos3"})


@pytest.mark.slow  # a soak run (28 s): kept out of the 10-minute default suite
def test_5000_steps_keep_replies_bounded(server):
    backend = RemoteBackend(server)
    env = LearnedEnv(backend, START, success_threshold=1.01)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    sizes, send = [], backend._request

    def spy(method, path, **kw):
        res = send(method, path, **kw)
        sizes.append(sum(len(k) + len(v) for k, v in res.headers.items()))
        return res

    backend._request = spy
    for _ in range(10):
        obs, *_ = env.step(rng.uniform(0, 512, (500, 2)))
    assert env._steps == 5000 and np.isfinite(obs["observation.state"]).all()
    assert max(sizes) < 1024  # headers hold the last frame only; per-frame records come as JSON


# ---------------------------------------------------------------- our client, a fake Cosmos 3 (stateless)

@pytest.fixture(scope="module")
def fake(ref):
    app, seen = create_fake(ref)
    with Running(app, free_port()) as running:
        yield running.url, seen


def test_stateless_client_drives_a_cosmos3_for_20_pusht_steps(fake, ref):
    url, seen = fake
    seen.clear()
    env = gym.make("cosmos3_robot/PushT-v0", backend="remote", url=url, stateless=True).unwrapped
    assert env.backend.model == MODEL and env.backend.history == 1
    obs, _ = env.reset(seed=3)
    first = obs["observation.image"]
    for t in range(1, 21):
        obs, reward, *_ = env.step(np.array([200.0, 300.0]))
        # each request conditions on the env's last frame; the reply's frame 0 is that condition, frame 1 the step
        np.testing.assert_array_equal(obs["observation.image"], np.roll(first, t, axis=1))
        assert reward == 0.0
    assert len(seen) == 20
    s = seen[-1]
    assert s["domain_id"] == ref.action.EMBODIMENT_TO_DOMAIN_ID["pusht"] == 4 and s["size"] == (96, 96)
    assert s["num_frames"] == 5 and s["action"].shape == (4, 2) and s["offset"] == 1 and s["reference_frames"] == 1
    np.testing.assert_allclose(s["action"], [[200.0, 300.0]] * 4)  # raw units, held to fill the latent frame


def test_stateless_client_drives_a_cosmos3_for_20_franka_steps(fake, ref):
    url, seen = fake
    seen.clear()
    env = gym.make("cosmos3_robot/FrankaCube-v0", backend="remote", url=url, stateless=True).unwrapped
    backend = env.backend
    assert backend.domain_name == "droid_lerobot" and backend.action_variant == "joint_position"
    checked = capture(backend, ref)
    obs, _ = env.reset(seed=0)
    action = np.clip(obs["observation.state"][:8], env.action_space.low, env.action_space.high)  # joints + gripper
    env.step(np.repeat(action[None], 8, 0))  # a chunk of 8 in one request: num_frames 9
    for _ in range(12):
        obs, *_ = env.step(action)
    assert len(seen) == 13 and all(c["domain"] == 8 for c in checked)
    s = seen[0]
    assert s["domain_id"] == ref.action.EMBODIMENT_TO_DOMAIN_ID["droid_lerobot"] and s["num_frames"] == 9
    assert s["action"].shape == (8, 8) and s["size"] == (320, 270)  # the wrist on top, two exteriors below
    for cam in ("wrist_left", "exterior_1_left", "exterior_2_left"):
        assert obs[f"observation.images.{cam}"].shape == (180, 320, 3)


# ---------------------------------------------------------------- our server as a drop-in

RECIPE_FD = ('curl -sS -f-ish -X POST {url}/v1/videos/sync -H "Accept: video/mp4" --form-string "model=nvidia/Cosmos3-Nano" '
             '--form-string "prompt=You are an autonomous vehicle. This video is captured from a first-person perspective." '
             '-F "input_reference=@{frame};type=image/jpeg" -F "size=640x480" -F "num_frames=61" -F "fps=10" '
             '-F "num_inference_steps=30" -F "guidance_scale=1.0" -F "flow_shift=5.0" '
             '--form-string "extra_params={{\\"action_mode\\":\\"forward_dynamics\\",\\"domain_name\\":\\"{domain}\\",'
             '\\"raw_action_dim\\":{dim},\\"action_chunk_size\\":60,\\"action\\":$(cat {action})}}" -F "seed=0" -o {out}')
RECIPE_POLICY = ('curl -sS -X POST {url}/v1/videos -H "Accept: application/json" --form-string "model=nvidia/Cosmos3-Nano" '
                 '--form-string "prompt=Pick up the banana and place it in the bowl." '
                 '-F "input_reference=@{frame};type=image/jpeg" -F "size=640x480" -F "num_frames=17" -F "fps=5" '
                 '-F "num_inference_steps=30" -F "guidance_scale=1.0" -F "flow_shift=5.0" '
                 '--form-string \'extra_params={{"action_mode":"policy","domain_name":"{domain}","raw_action_dim":{dim},'
                 '"action_chunk_size":16}}\' -F "seed=0"')


RECIPE_INVERSE = ('curl -sS -X POST {url}/v1/videos -H "Accept: application/json" --form-string "model=nvidia/Cosmos3-Nano" '
                  '--form-string "prompt=Recover the robot action trajectory from this clip." '
                  '-F "input_reference=@{clip};type=video/mp4" -F "size=640x480" -F "num_frames=17" -F "fps=5" '
                  '-F "num_inference_steps=30" -F "guidance_scale=1.0" -F "flow_shift=5.0" '
                  '--form-string \'extra_params={{"action_mode":"inverse_dynamics","domain_name":"{domain}",'
                  '"raw_action_dim":{dim},"action_chunk_size":16}}\' -F "seed=0"')


def test_the_recipes_inverse_dynamics_command_succeeds_with_the_domain_changed(server, tmp_path, ref):
    from cosmos3_robot.tasks import make_policy, make_real_env

    env, policy = make_real_env("pusht"), make_policy("pusht", "expert", 0)
    obs, _ = env.reset(seed=930000)
    frames = [obs["observation.image"]]
    for _ in range(16):
        obs, *_ = env.step(policy.select_action(obs))
        frames.append(obs["observation.image"])
    clip = tmp_path / "motion_clip.mp4"
    clip.write_bytes(mp4_bytes(np.stack(frames), 5))
    run = lambda **kw: json.loads(subprocess.run(RECIPE_INVERSE.format(url=server, clip=clip, **kw), shell=True,  # noqa: E731
                                                 capture_output=True, text=True).stdout)
    job = run(domain="pusht", dim=2)
    assert job["status"] == "queued", job
    status = finished_job(lambda path: httpx.get(server + path), job["id"])
    parsed = ref.videos.VideoResponse.model_validate(status)
    assert parsed.status == "completed" and parsed.action.shape == [16, 2]
    assert parsed.action.action_mode == "inverse_dynamics" and parsed.action.domain_id == 4
    err = run(domain="bridge_orig_lerobot", dim=10)["error"]
    assert err["code"] == 400 and err["param"] == "extra_params.raw_action_dim"


def test_the_recipes_curl_commands_succeed_with_the_domain_changed(server, tmp_path, ref):
    """recipes/cosmos3/Cosmos3-Nano.md's forward-dynamics and policy commands: host, port and domain changed
    (and the action's width with it) they succeed; unchanged (domain av / bridge_orig_lerobot) they get a 400
    in vLLM's envelope."""
    obs = real_frame(11)
    frame = tmp_path / "first_frame.jpg"
    cv2.imwrite(str(frame), obs["observation.image"][:, :, ::-1])
    (tmp_path / "action.json").write_text(json.dumps(np.random.default_rng(0).uniform(0, 512, (60, 2)).tolist()))
    (tmp_path / "action9.json").write_text(json.dumps(np.zeros((60, 9)).tolist()))
    sh = lambda cmd: subprocess.run(cmd.replace("-f-ish ", ""), shell=True, capture_output=True, text=True)  # noqa: E731
    sh(RECIPE_FD.format(url=server, frame=frame, domain="pusht", dim=2, action=tmp_path / "action.json",
                        out=tmp_path / "fd.mp4"))
    video = frames_from_mp4((tmp_path / "fd.mp4").read_bytes())
    assert video.shape == (61, 480, 640, 3)  # size honoured; the video opens with the condition
    sh(RECIPE_FD.format(url=server, frame=frame, domain="av", dim=9, action=tmp_path / "action9.json",
                        out=tmp_path / "bad.json"))
    err = json.loads((tmp_path / "bad.json").read_text())["error"]
    assert err["code"] == 400 and err["param"] == "extra_params.raw_action_dim"

    job = json.loads(sh(RECIPE_POLICY.format(url=server, frame=frame, domain="pusht", dim=2)).stdout)
    ref.videos.VideoResponse.model_validate(job)
    assert job["status"] == "queued"
    status = finished_job(lambda path: httpx.get(server + path), job["id"])
    parsed = ref.videos.VideoResponse.model_validate(status)
    assert parsed.status == "completed" and parsed.action.shape == [16, 2] and parsed.action.action_mode == "policy"
    assert parsed.action.domain_id == 4 and parsed.action.raw_action_dim == 2
    video = frames_from_mp4(httpx.get(f"{server}/v1/videos/{job['id']}/content").content)
    assert video.shape == (17, 480, 640, 3)
    bad = json.loads(sh(RECIPE_POLICY.format(url=server, frame=frame, domain="bridge_orig_lerobot", dim=10)).stdout)
    assert bad["error"]["code"] == 400 and bad["error"]["param"] == "extra_params.raw_action_dim"
    listing = ref.videos.VideoListResponse.model_validate(httpx.get(server + "/v1/videos").json())
    assert job["id"] in [j.id for j in listing.data]
    gone = ref.videos.VideoDeleteResponse.model_validate(httpx.delete(f"{server}/v1/videos/{job['id']}").json())
    assert gone.deleted and httpx.get(f"{server}/v1/videos/{job['id']}").status_code == 404


def test_policy_job_answers_the_expert_chunk(server, ref):
    from cosmos3_robot.tasks import make_policy

    obs = real_frame(11)
    png = cv2.imencode(".png", obs["observation.image"][:, :, ::-1])[1].tobytes()
    form = {"prompt": "push the T", "num_frames": "5", "extra_params": json.dumps(
        {"action_mode": "policy", "domain_name": "pusht", "action_chunk_size": 4, "state": [obs["observation.state"].tolist()]})}
    job = httpx.post(server + "/v1/videos", data=form, files={"input_reference": ("f.png", png, "image/png")}).json()
    status = finished_job(lambda path: httpx.get(server + path), job["id"])
    assert status["status"] == "completed", status
    action = ref.videos.VideoAction.model_validate(status["action"])
    policy = make_policy("pusht", "expert", 0)
    policy.reset(0)
    want = np.stack([policy.select_action(obs) for _ in range(4)])
    np.testing.assert_allclose(np.asarray(action.data), want, atol=1e-3)
    video = frames_from_mp4(httpx.get(f"{server}/v1/videos/{job['id']}/content").content)
    np.testing.assert_array_equal(video[0], obs["observation.image"])  # it opens with the given frame


def test_inverse_dynamics_job_recovers_the_actions_of_a_real_clip(pusht_app, ref):
    """Cosmos 3's third action mode through the same tower: a real gym-pusht clip in, its actions out, closer
    than repeating the last action."""
    from cosmos3_robot.tasks import make_policy, make_real_env

    env, policy = make_real_env("pusht"), make_policy("pusht", "expert-noise0.2", 5)
    policy.reset(5)
    obs, _ = env.reset(seed=920000)
    frames, actions = [obs["observation.image"]], []
    for _ in range(8):
        actions.append(np.asarray(policy.select_action(obs)))
        obs, *_ = env.step(actions[-1])
        frames.append(obs["observation.image"])
    form = {"prompt": "recover", "num_frames": "9", "extra_params": json.dumps(
        {"action_mode": "inverse_dynamics", "domain_name": "pusht", "raw_action_dim": 2, "action_chunk_size": 8})}
    with TestClient(pusht_app) as c:
        job = c.post("/v1/videos", data=form, files={"input_reference": ("clip.mp4", mp4_bytes(np.stack(frames), 10))})
        assert job.status_code == 200, job.text
        status = finished_job(c.get, job.json()["id"])
    got = ref.videos.VideoResponse.model_validate(status)
    assert got.status == "completed" and got.action.action_mode == "inverse_dynamics" and got.action.shape == [8, 2]
    err = np.abs(np.asarray(got.action.data) - np.stack(actions))[1:].mean()
    baseline = np.abs(np.stack(actions)[:-1] - np.stack(actions)[1:]).mean()
    assert err < baseline / 2, (err, baseline)


def test_a_start_without_state_is_refused_unless_the_backend_reads_it(pusht_app):
    """PushT's backend reads the pusher off the frame (within a few units); a backend that cannot says which field."""
    from cosmos3_robot.backends.structured import StructuredBackend  # noqa: F401

    obs = real_frame(4)
    mp4 = mp4_bytes(obs["observation.image"][None], 10)
    backend = load_backend("pusht_tower")
    state = backend.read_state({"top": obs["observation.image"][None]})[0]
    assert np.abs(state - obs["observation.state"]).max() < 5
    blind = create_app(_Blind(backend), "m")
    with TestClient(blind) as c:
        res = c.post("/v1/videos/sync", data={"prompt": "p", "extra_params": json.dumps(
            {"action_mode": "forward_dynamics", "action": [[1.0, 2.0]]})}, files={"input_reference": ("c.mp4", mp4)})
    assert res.status_code == 400 and res.json()["error"]["param"] == "extra_params.state"
    env = LearnedEnv(backend, START)
    with pytest.raises(ValueError, match="'frames' needs 'state'"):
        env.reset(options={"frames": obs["observation.image"]})
    with pytest.raises(ValueError, match=r"\['framez'\] are not known"):
        env.reset(options={"framez": obs["observation.image"]})


class _Blind:
    """A backend that does not read the state off frames."""

    def __init__(self, inner):
        self.inner = inner
        self.spec, self.cameras, self.history = inner.spec, inner.cameras, inner.history
        self.success_threshold = inner.success_threshold

    def reset(self, ctx, seed=None):
        return self.inner.reset(ctx, seed)

    def step(self, session, actions):
        return self.inner.step(session, actions)


def test_sessions_are_issued_by_the_server_and_not_guessable(pusht_app):
    obs = real_frame(2)
    mp4 = mp4_bytes(obs["observation.image"][None], 10)
    ep = {"action_mode": "forward_dynamics", "action": [[100.0, 100.0]], "session_id": "new",
          "state": [obs["observation.state"].tolist()]}
    with TestClient(pusht_app) as c:
        sids = []
        for _ in range(2):
            res = c.post("/v1/videos/sync", data={"prompt": "p", "extra_params": json.dumps(ep)},
                         files={"input_reference": ("c.mp4", mp4)})
            assert res.status_code == 200
            sids.append(res.headers["x-cosmos3-robot-session"])
        assert sids[0] != sids[1] and all(len(s) >= 32 for s in sids)
        mine = c.post("/v1/videos/sync", data={"prompt": "p", "extra_params": json.dumps({**ep, "session_id": "alice"})},
                      files={"input_reference": ("c.mp4", mp4)})
        assert mine.status_code == 400 and mine.json()["error"]["param"] == "extra_params.session_id"
        guess = c.post("/v1/videos/sync", data={"prompt": "p", "extra_params": json.dumps(
            {"action_mode": "forward_dynamics", "action": [[1.0, 1.0]], "session_id": sids[0][:-1] + "x"})})
        assert guess.status_code == 404
        assert c.get(f"/v1/sessions/{sids[0]}x").status_code == 404


def test_api_key_is_asked_on_v1_as_vllm_does():
    app = create_app(load_backend("pusht_tower"), "m", api_key="sekret")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            res = c.get("/v1/models", headers=headers)
            assert res.status_code == 401 and res.json()["error"]["code"] == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer sekret"}).status_code == 200
    url = None
    proc, url = start_server("--api-key", "sekret")
    try:
        with pytest.raises(RemoteError, match="401"):
            RemoteBackend(url)
        assert RemoteBackend(url, api_key="sekret").model == "pusht_tower"
    finally:
        proc.terminate()
        proc.wait()


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_health_answers_within_a_second_while_the_longest_job_runs_and_memory_returns():
    proc, url = start_server("--policy", "expert", "--max-num-frames", "400")
    try:
        obs = real_frame(1)
        png = cv2.imencode(".png", obs["observation.image"][:, :, ::-1])[1].tobytes()
        form = {"prompt": "p", "num_frames": "400", "extra_params": json.dumps(
            {"action_mode": "policy", "state": [obs["observation.state"].tolist()]})}
        files = {"input_reference": ("f.png", png, "image/png")}

        def job():
            t0 = time.time()
            job = httpx.post(url + "/v1/videos", data=form, files=files, timeout=5).json()
            assert time.time() - t0 < 1 and job["status"] == "queued"
            return job["id"]

        def wait(video_id):
            slowest = 0.0
            while True:
                t0 = time.time()
                assert httpx.get(url + "/health", timeout=5).status_code == 200
                slowest = max(slowest, time.time() - t0)
                if httpx.get(f"{url}/v1/videos/{video_id}").json()["status"] in ("completed", "failed"):
                    return slowest
                time.sleep(0.05)

        wait(job())  # warm-up: imports, graphs
        baseline = _rss_mb(proc.pid)
        too_big = httpx.post(url + "/v1/videos", data={**form, "num_frames": "401"}, files=files)
        assert too_big.status_code == 400 and too_big.json()["error"]["param"] == "num_frames"
        assert wait(job()) < 1.0
        assert _rss_mb(proc.pid) < baseline + 100
    finally:
        proc.terminate()
        proc.wait()


# ---------------------------------------------------------------- no input gets a 5xx

def _forms():
    from hypothesis import strategies as st

    json_value = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
                              lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                              max_leaves=8)
    keys = ["action_mode", "domain_name", "domain_id", "raw_action_dim", "action_chunk_size", "action", "state",
            "session_id", "step", "action_scale", "action_space", "deterministic_seed"]
    good = {"action_mode": st.sampled_from(["forward_dynamics", "policy", "inverse_dynamics", "FORWARD_DYNAMICS "]),
            "action": st.just([[100.0, 200.0]]) | st.lists(st.lists(st.floats(-1e9, 1e9), max_size=3), max_size=3),
            "state": st.just([[200.0, 200.0]]) | json_value, "session_id": st.just("new") | st.text(max_size=8)}
    extra = st.fixed_dictionaries({}, optional={k: good.get(k, json_value) for k in keys})
    field = lambda *s: st.none() | st.text(max_size=6) | st.sampled_from(list(s))  # noqa: E731
    return st.fixed_dictionaries({}, optional={
        "model": field(SERVED, "other"), "prompt": field("push"), "size": field("96x96", "0x0", "abc", "99999x1", "400x400"),
        "num_frames": field("2", "5", "-1", "0", "9", "10", "1e3", "2.5"),
        "fps": field("-10", "0", "nan", "inf", "10"), "seed": field("-1", str(2**70), "7"),
        "num_inference_steps": field("0", "500", "4"),
        "extra_params": extra.map(json.dumps) | field("[1]", '"s"', "{", "null")}), \
        st.sampled_from(["none", "png", "png400", "mp4", "mp4x2", "junk"])


def _file(kind: str):
    img = np.full((96, 96, 3), 200, np.uint8)
    cv2.circle(img, (40, 50), 3, (225, 105, 65), -1)  # a blue pusher (BGR)
    if kind == "none":
        return None
    if kind == "junk":
        return {"input_reference": ("x.bin", b"\x00junk" * 10)}
    if kind.startswith("png"):
        big = cv2.resize(img, (400, 400)) if kind == "png400" else img
        return {"input_reference": ("f.png", cv2.imencode(".png", big)[1].tobytes(), "image/png")}
    frames = np.stack([img[:, :, ::-1]] * (2 if kind == "mp4x2" else 1))
    if kind == "mp4x2":
        frames = np.stack([cv2.resize(f, (400, 400)) for f in frames])
    return {"input_reference": ("c.mp4", mp4_bytes(frames, 10), "video/mp4")}


def test_no_form_gets_a_5xx_or_a_plain_text_reply(pusht_app):
    from hypothesis import HealthCheck, given, settings

    forms = _forms()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(forms[0], forms[1])
    def check(form, kind):
        for path in ("/v1/videos/sync", "/v1/videos"):
            res = client.post(path, data=form, files=_file(kind))
            assert res.status_code < 500, (path, form, kind, res.text[:300])
            if res.status_code >= 400:
                err = res.json()["error"]
                assert err["code"] == res.status_code and err["message"]

    with TestClient(pusht_app) as client:
        check()
