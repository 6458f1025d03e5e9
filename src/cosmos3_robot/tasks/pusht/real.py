"""Real-simulator adapters speaking the toolkit's schema: LeRobot observation keys
(the spec's camera keys, `observation.state`), actions in the spec's physical units,
validated by `validate_action`. Each can reset to a seed or to a full simulator state
(`get_state()` / `reset(options={"state": ...})`) so a learned simulator can start from the same
state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ...embodiments import action_space_for, load_spec, observation_space_for, validate_action
from ...errors import UserError


def set_state(env, state: np.ndarray) -> None:
    """Put a gym-pusht `PushTEnv` exactly in `PushTRealEnv.get_state()`'s state ((5,) at rest, or (10,) with
    velocities). The angle is set before the position: pymunk rotates about the centre of gravity, which
    moves the body origin."""
    state = np.asarray(state, dtype=np.float64)
    if state.shape not in ((5,), (10,)):
        raise UserError(f"PushT state has shape {state.shape}, expected (5,) = agent xy, block xy, angle"
                         " (at rest) or (10,) with velocities, as get_state() returns")
    if not np.isfinite(state).all():
        raise UserError(f"PushT state {state.tolist()} holds NaN or inf; give finite values as get_state() returns")
    vel = state[5:] if len(state) == 10 else np.zeros(5)
    env.agent.position = tuple(state[:2])
    env.agent.velocity = tuple(vel[:2])
    env.block.angle = float(state[4])
    env.block.position = tuple(state[2:4])
    env.block.velocity, env.block.angular_velocity = tuple(vel[2:4]), float(vel[4])
    env.space.reindex_shapes_for_body(env.block)
    env.space.reindex_shapes_for_body(env.agent)


class PushTRealEnv(gym.Env):
    """gym-pusht (pymunk physics, 96x96 pixels + agent position) in the `pusht` spec's schema.

    Reward is the goal coverage in [0, 1]; `terminated` when coverage >= `success_threshold`.
    gym-pusht's own threshold is 0.95; our default is 0.90 because a policy that sees only the
    96x96 image cannot localize the T to the ~2 units that 95% coverage demands (README)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, success_threshold: float = 0.90, max_episode_steps: int = 300,
                 render_mode: str = "rgb_array", out_of_limits: str = "clip"):
        from gym_pusht.envs.pusht import PushTEnv

        self.embodiment = load_spec("pusht")
        self.image_key = self.embodiment.cameras[0].key  # lerobot/pusht's observation.image
        self.success_threshold = success_threshold
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.out_of_limits = out_of_limits
        self._env = PushTEnv(obs_type="pixels_agent_pos", render_mode="rgb_array")
        self.observation_space = observation_space_for(self.embodiment)
        self.action_space = action_space_for(self.embodiment)
        self._steps = 0
        self._last_obs = None

    def _obs(self, raw) -> dict:
        return {self.image_key: np.ascontiguousarray(raw["pixels"], dtype=np.uint8),
                "observation.state": np.asarray(raw["agent_pos"], dtype=np.float32)}

    def get_state(self) -> np.ndarray:
        """Full simulator state: gym-pusht's [agent_x, agent_y, block_x, block_y, block_angle] then the
        velocities [agent_vx, agent_vy, block_vx, block_vy, block_angular_velocity]."""
        e = self._env
        return np.array([*e.agent.position, *e.block.position, e.block.angle, *e.agent.velocity,
                         *e.block.velocity, e.block.angular_velocity], dtype=np.float64)

    def _restore(self, state: np.ndarray) -> dict:
        set_state(self._env, state)
        return self._env.get_obs()

    def coverage(self) -> float:
        return float(self._env._get_coverage())

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """The camera frame (H, W, 3) uint8 of a simulator state ((5,) or (10,), as `get_state`), drawn by
        gym-pusht's own renderer without stepping the physics; the env is left in that state."""
        if getattr(self._env, "space", None) is None:
            self._env.reset(seed=0)
        return self._obs(self._restore(np.asarray(state, dtype=np.float64)))[self.image_key]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        state = None if options is None else options.get("state")
        raw, _ = self._env.reset(seed=seed)
        if state is not None:
            raw = self._restore(np.asarray(state, dtype=np.float64))
        self._steps = 0
        self._last_obs = self._obs(raw)
        return self._last_obs, {"coverage": self.coverage(), "is_success": False, "state": self.get_state()}

    def step(self, action):
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        checked: dict = {}
        action = validate_action(self.embodiment, action, out_of_limits=self.out_of_limits, allow_chunk=False,
                                 report=checked)
        raw, _, _, _, _ = self._env.step(action.astype(np.float64))
        self._steps += 1
        cov = self.coverage()
        success = cov >= self.success_threshold
        self._last_obs = self._obs(raw)
        info = {"coverage": cov, "is_success": success, "state": self.get_state(), "action_clipped": checked["clipped"]}
        return self._last_obs, float(cov), success, self._steps >= self.max_episode_steps, info

    def render(self):
        return None if self._last_obs is None else self._last_obs[self.image_key].copy()

    def close(self):
        self._env.close()


def random_pusht_frames(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` gym-pusht frames of uniformly random states (pusher anywhere it can reach, the T anywhere inside
    the walls at any angle): (n, H, W, 3) uint8 frames and the (n, 2) agent positions. Extra renderer data
    for poses the recorded episodes never visit."""
    rng = np.random.default_rng(seed)
    env = PushTRealEnv()
    frames, agents = [], []
    for _ in range(n):
        state = np.array([*rng.uniform(20, 492, 2), *rng.uniform(70, 440, 2), rng.uniform(-np.pi, np.pi)])
        frames.append(env.render_state(state))
        agents.append(state[:2])
    env.close()
    return np.stack(frames), np.array(agents, np.float32)
