"""LeRobot env plugin: the learned simulators as an env type of `lerobot-eval` and the rest of LeRobot's
scripts.

    lerobot-eval --policy.path=DIR --env.type=cosmos3_robot --env.task=TASK --eval.n_episodes=50 \\
        --eval.batch_size=10

LeRobot (0.6) finds it in either of its two plugin ways: the installed `lerobot_env_cosmos3_robot`
distribution (`plugins/lerobot_env_cosmos3_robot`, installed by scripts/setup.sh), which
`register_third_party_plugins()` imports, or `--env.discover_packages_path=cosmos3_robot.lerobot_plugin`
(lerobot/configs/parser.py `load_plugin`).

The env speaks LeRobot's env conventions (lerobot/envs/utils.py `preprocess_observation`): observations
{"pixels": frames or {camera: frames}, "agent_pos": state}, which LeRobot renames to the dataset keys of
the task's embodiment spec ("observation.image" for a camera keyed so, else "observation.images.<camera>",
and "observation.state"). The batch is the project's native `LearnedVectorEnv` (one backend call per step
for all `--eval.batch_size` envs), whose `call("_max_episode_steps")` and `call("render")` are what
LeRobot's rollout and video writer ask; the initial states are the real simulator's resets from LeRobot's
seeds, so `--env.type=<LeRobot's own type of the real simulator>` runs the same episodes in the real one."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGE, OBS_IMAGES, OBS_STATE

from ..embodiments import EmbodimentSpec, load_spec
from ..tasks import REGISTRY, learned_env_id, real_env_id, task_info
from ..errors import UserError

TYPE = "cosmos3_robot"


def learned_tasks() -> list[str]:
    """Tasks that ship a learned simulator (the choices of --env.task), in the order the tasks are registered:
    the first is the default."""
    return [t.name for t in REGISTRY.values() if t.learned_id] + [a for t in REGISTRY.values() if t.learned_id
                                                                   for a in t.aliases]


def pixel_keys(spec: EmbodimentSpec) -> dict[str, str]:
    """camera name -> its LeRobot env feature: "pixels" for a single camera keyed `observation.image`,
    else "pixels/<camera>" (LeRobot's nesting for {camera: frames}, renamed to observation.images.<camera>)."""
    if len(spec.cameras) == 1 and spec.cameras[0].key == OBS_IMAGE:
        return {spec.cameras[0].name: "pixels"}
    return {c.name: f"pixels/{c.name}" for c in spec.cameras}


class LeRobotObservations(gym.vector.VectorObservationWrapper):
    """A vector env with the project's dataset-keyed observations -> LeRobot's env keys (see module doc)."""

    def __init__(self, env: gym.vector.VectorEnv, spec: EmbodimentSpec, task_description: str):
        super().__init__(env)
        self.embodiment, self.description = spec, task_description
        self.pixels = pixel_keys(spec)
        single = env.single_observation_space
        images = {name: single[spec.camera(name).key] for name in self.pixels}
        pixels = images[spec.cameras[0].name] if list(self.pixels.values()) == ["pixels"] else gym.spaces.Dict(images)
        self.single_observation_space = gym.spaces.Dict({"pixels": pixels, "agent_pos": single[OBS_STATE]})
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)

    def observations(self, observations: dict) -> dict:
        frames = {name: observations[self.embodiment.camera(name).key] for name in self.pixels}
        pixels = next(iter(frames.values())) if list(self.pixels.values()) == ["pixels"] else frames
        return {"pixels": pixels, "agent_pos": observations[OBS_STATE]}

    def call(self, name: str, *args, **kwargs) -> tuple:
        if name in ("task_description", "task"):  # what LeRobot's rollout hands language-conditioned policies
            return (self.description,) * self.num_envs
        return self.env.call(name, *args, **kwargs)

    def get_attr(self, name: str) -> tuple:
        return self.call(name) if name in ("task_description", "task") else self.env.get_attr(name)


@EnvConfig.register_subclass(TYPE)
@dataclass
class Cosmos3RobotEnv(EnvConfig):
    """`--env.type=cosmos3_robot`: a learned simulator of this project. `task`: the task (embodiment) name;
    `checkpoint`: a checkpoint directory or shipped name (default: the task's shipped one); `episode_length`:
    steps before truncation (default: the registered env's, as the real simulator's); `success_threshold`:
    reward at which an episode succeeds (default: the checkpoint's);
    `runtime`: structured backends' runtime ("auto", "torch", "onnxruntime"); `instruction`: the text handed
    to language-conditioned policies (default: the spec's task)."""

    task: str | None = field(default_factory=lambda: learned_tasks()[0])
    fps: int | None = None  # default: the spec's control rate
    checkpoint: str | None = None
    episode_length: int | None = None
    success_threshold: float | None = None
    runtime: str = "auto"
    instruction: str | None = None

    def __post_init__(self):
        if self.task not in learned_tasks():
            raise UserError(f"--env.task={self.task!r}: no learned simulator for it; choose one of {learned_tasks()}")
        spec = load_spec(task_info(self.task).embodiment)
        if self.fps is None:
            self.fps = int(round(spec.control_hz))
        if self.episode_length is None:
            self.episode_length = int(gym.spec(learned_env_id(self.task)).max_episode_steps or 300)
        if self.episode_length < 1:
            raise UserError(f"--env.episode_length={self.episode_length}; give a positive number of steps")
        self.features = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(spec.action_dims,)),
                         "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(spec.state.dims,))}
        self.features_map = {ACTION: ACTION, "agent_pos": OBS_STATE}
        for name, key in pixel_keys(spec).items():
            cam = spec.camera(name)
            self.features[key] = PolicyFeature(type=FeatureType.VISUAL, shape=(cam.height, cam.width, 3))
            self.features_map[key] = OBS_IMAGE if key == "pixels" else f"{OBS_IMAGES}.{name}"

    @property
    def gym_kwargs(self) -> dict:
        return {"max_episode_steps": self.episode_length}

    def create_envs(self, n_envs: int, use_async_envs: bool = False) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        """{type: {0: the batched learned env}}; `use_async_envs` is moot: one process steps the whole batch."""
        from ..backends import load_backend
        from ..sim import LearnedVectorEnv

        spec = load_spec(task_info(self.task).embodiment)
        kwargs = {} if self.runtime == "auto" else {"runtime": self.runtime}
        backend = load_backend(self.checkpoint or gym.spec(learned_env_id(self.task)).kwargs["backend"], **kwargs)
        env = LearnedVectorEnv(n_envs, backend, real_env_id(self.task), max_episode_steps=self.episode_length,
                               success_threshold=self.success_threshold, instruction=self.instruction)
        return {self.type: {0: LeRobotObservations(env, spec, self.instruction or spec.task)}}

