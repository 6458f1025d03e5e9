"""gym-aloha in the toolkit's schema (LeRobot keys, physical units, validated actions)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ...embodiments import action_space_for, load_spec, observation_space_for, validate_action
from ...errors import UserError

_PARKED: list = []  # closed gym-aloha scenes, kept alive until exit (see AlohaRealEnv.close)


def _render_top_only(task, frames: str, held: list) -> None:
    """gym-aloha's tasks render three 480x640 cameras per step (top, angle, front_close) and its env returns only
    `top`: render that one (0.1 s a step here instead of 0.33; the same pixels, by the same renderer). With
    frames="first" only the first observation after a reset is rendered and later ones repeat it (`held`: a
    one-item list the env empties at reset)."""
    import collections

    def observation(physics):
        obs = collections.OrderedDict(qpos=task.get_qpos(physics), qvel=task.get_qvel(physics),
                                      env_state=task.get_env_state(physics))
        if frames == "every" or not held:
            held[:] = [physics.render(height=480, width=640, camera_id="top")]
        obs["images"] = {"top": held[0]}
        return obs

    task.get_observation = observation


class AlohaRealEnv(gym.Env):
    """gym-aloha (MuJoCo bimanual ViperX; insertion or transfer_cube) in the `aloha` spec's schema.
    Renders headless with MUJOCO_GL=egl; only the `top` camera exists in gym-aloha's scene.

    frames="first" renders only each episode's first frame and repeats it after that: for policies that read the
    image once (the scripted transfer-cube ladder finds the cube in the first frame), and for state-only data.
    The physics, rewards and states are those of frames="every" (scripts/aloha_real_ladder.py --check)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, task: str = "insertion", max_episode_steps: int = 400, render_mode: str = "rgb_array",
                 out_of_limits: str = "clip", frames: str = "every"):
        from gym_aloha.env import AlohaEnv

        if task not in ("insertion", "transfer_cube"):
            raise UserError(f"aloha task {task!r} is not one of ['insertion', 'transfer_cube']")
        if frames not in ("every", "first"):
            raise UserError(f"frames={frames!r}: choose 'every' (a top frame per step) or 'first' (the reset's "
                            "frame, repeated)")
        self.frames, self._held = frames, []
        self.embodiment = load_spec("aloha")
        self.task, self.render_mode, self.out_of_limits = task, render_mode, out_of_limits
        self.max_episode_steps = max_episode_steps
        self._env = AlohaEnv(task=task, obs_type="pixels_agent_pos", render_mode="rgb_array")
        self._render_top_only()
        self.observation_space = observation_space_for(self.embodiment, ["top"])
        self.action_space = action_space_for(self.embodiment)
        self._steps = 0
        self._last_obs = None

    def _render_top_only(self) -> None:
        _render_top_only(self._env._env.task, self.frames, self._held)

    def _obs(self, raw) -> dict:
        return {"observation.images.top": np.ascontiguousarray(raw["pixels"]["top"], dtype=np.uint8),
                "observation.state": np.asarray(raw["agent_pos"], dtype=np.float32)}

    def get_state(self) -> np.ndarray:
        """MuJoCo physics state (qpos, qvel, act) of the dm_control task."""
        return np.asarray(self._env._env.physics.get_state()).copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._held.clear()  # frames="first": this episode's first frame is rendered
        # gym-aloha reseeds its task only when given a seed: draw one from np_random so that an unseeded reset
        # after a seeded one is reproducible too (gymnasium's env checker)
        raw, _ = self._env.reset(seed=seed if seed is not None else int(self.np_random.integers(2**31)))
        if options is not None and options.get("state") is not None:
            physics = self._env._env.physics
            physics.set_state(np.asarray(options["state"]))
            physics.forward()
            self._held.clear()
            raw = self._env._format_raw_obs(self._env._env.task.get_observation(physics))
        self._steps = 0
        self._last_obs = self._obs(raw)
        return self._last_obs, {"is_success": False, "state": self.get_state()}

    def step(self, action):
        checked: dict = {}
        action = validate_action(self.embodiment, action, out_of_limits=self.out_of_limits, allow_chunk=False,
                                 report=checked)
        from dm_control.rl.control import PhysicsError

        self._steps += 1
        try:
            raw, reward, success, _, _ = self._env.step(action.astype(np.float64))
        except PhysicsError as e:
            # MuJoCo's state blew up (e.g. uniform random joint targets across the whole range): the episode ends
            # there, truncated and unsuccessful, with the last good observation; reset() starts a fresh one
            info = {"is_success": False, "state": self.get_state(), "action_clipped": checked["clipped"],
                    "physics_error": str(e)}
            return self._last_obs, 0.0, False, True, info
        self._last_obs = self._obs(raw)
        info = {"is_success": bool(success), "state": self.get_state(), "action_clipped": checked["clipped"]}
        return self._last_obs, float(reward), bool(success), self._steps >= self.max_episode_steps, info

    def render(self):
        return None if self._last_obs is None else self._last_obs["observation.images.top"].copy()

    def close(self):
        # dm_control frees its EGL context with gym-aloha's physics, and on Mesa's EGL that breaks every other
        # MuJoCo renderer in the process (measured: FrankaCubeRealEnv's cameras then draw wrong views). A
        # closed scene is parked until the process exits instead; it holds its physics and render buffers.
        if getattr(self, "_env", None) is not None:
            _PARKED.append(self._env)
            self._env = None

    def __del__(self):
        self.close()


class AlohaTransferCubeRealEnv(AlohaRealEnv):
    """gym-aloha's transfer-cube scene (`cosmos3_robot/AlohaTransferCubeReal-v0`): success, as gym-aloha's, is
    its reward 4 (the left gripper holds the cube off the table)."""

    def __init__(self, max_episode_steps: int = 200, render_mode: str = "rgb_array", out_of_limits: str = "clip",
                 frames: str = "every"):
        super().__init__("transfer_cube", max_episode_steps, render_mode, out_of_limits, frames)
