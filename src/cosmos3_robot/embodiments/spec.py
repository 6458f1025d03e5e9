"""Embodiment specs: what an action, a state and a camera are for one robot, loaded from TOML.

A spec file lives in `cosmos3_robot/embodiments/specs/<name>.toml`; `load_spec("droid")` reads the
shipped one, `load_spec(path)` any other. Every field is checked on load and an error names the
file, the field and the fix.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from ..errors import UnknownName, UserError

REPRESENTATIONS = ("absolute", "delta", "velocity")
ROTATION_FORMATS = ("rot6d", "euler_xyz", "quat_xyzw", "matrix")
NORMALIZATION_MODES = ("quantile", "mean_std", "min_max", "identity")
VIEWPOINTS = ("ego", "wrist", "third_person", "concat")
KINDS = (
    "planar_pusher",
    "single_arm",
    "dual_arm",
    "humanoid",
    "camera_motion",
    "autonomous_vehicle",
    "egocentric",
)


class SpecError(UserError):
    """A spec file or spec field is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class FieldSpec:
    """One named block of an action or state vector (e.g. `ee_translation`, 3 dims, meters)."""

    name: str
    dims: int
    unit: str
    lower: np.ndarray  # (dims,)
    upper: np.ndarray  # (dims,)
    representation: str = "absolute"
    rotation: str | None = None
    normalization: str = "quantile"
    names: tuple[str, ...] = ()
    max_delta: float | None = None  # a velocity field: the change one unit makes in one control step
    integrates: str | None = None  # a velocity field: the state field it moves

    @property
    def dim_names(self) -> tuple[str, ...]:
        """Per-dimension names, `<field>.<name>`; LeRobot feature `names` use these."""
        if self.names:
            return tuple(f"{self.name}.{n}" for n in self.names)
        return tuple(f"{self.name}.{i}" for i in range(self.dims))


@dataclass(frozen=True)
class VectorSpec:
    """An ordered list of fields forming one flat vector (an action variant or the state)."""

    name: str
    fields: tuple[FieldSpec, ...]
    chunk_length: int = 1

    @property
    def dims(self) -> int:
        return sum(f.dims for f in self.fields)

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([f.lower for f in self.fields]) if self.fields else np.zeros(0)

    @property
    def upper(self) -> np.ndarray:
        return np.concatenate([f.upper for f in self.fields]) if self.fields else np.zeros(0)

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(n for f in self.fields for n in f.dim_names)

    @property
    def normalization_modes(self) -> tuple[str, ...]:
        """The normalization mode of every dimension, in vector order."""
        return tuple(m for f in self.fields for m in [f.normalization] * f.dims)

    def slices(self) -> dict[str, slice]:
        """Field name -> slice into the flat vector."""
        out, start = {}, 0
        for f in self.fields:
            out[f.name] = slice(start, start + f.dims)
            start += f.dims
        return out

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise UnknownName(f"{self.name!r} has no field {name!r}; fields are {[f.name for f in self.fields]}")


@dataclass(frozen=True)
class CameraSpec:
    """A camera stream: LeRobot key `observation.images.<name>` (or the spec's `key`, e.g. lerobot/pusht's
    single `observation.image`), frames of `height` x `width`."""

    name: str
    height: int
    width: int
    viewpoint: str
    calibration: dict | None = None  # CameraCalibration.to_dict() layout, when known a priori
    dataset_key: str | None = None

    @property
    def key(self) -> str:
        return self.dataset_key or f"observation.images.{self.name}"


def is_camera_key(key: str) -> bool:
    """Whether a LeRobot feature key holds camera frames: `observation.image` or `observation.images.<name>`."""
    return key == "observation.image" or key.startswith("observation.images.")


def camera_name(key: str) -> str:
    """A camera key's camera name: `observation.images.<name>` -> name; `observation.image` -> "image"."""
    return key.removeprefix("observation.images.") if key.startswith("observation.images.") else key.rpartition(".")[2]


@dataclass(frozen=True)
class EmbodimentSpec:
    """Everything the toolkit knows about one embodiment; see the spec files for sources."""

    name: str
    kind: str
    domain_id: int
    description: str
    control_hz: float
    video_fps: float
    chunk_length: int
    actions: dict[str, VectorSpec]
    default_action: str
    state: VectorSpec
    cameras: tuple[CameraSpec, ...]
    gripper_open: float | None = None  # value of a gripper field meaning "open" (0 or 1), None if no gripper
    concat_view: tuple[str, ...] = ()  # camera order of the concat layout: first on top, rest halved below
    task: str = ""
    robot_type: str = ""  # LeRobot's info.json robot_type for datasets of it (default: the spec's name)
    # LeRobot feature `names` for observation.state / action where a reference dataset fixes them (e.g.
    # lerobot/pusht's {"motors": ["motor_0", "motor_1"]}); None: the spec's own dim names
    lerobot_names: dict = field(default_factory=dict, compare=False)
    cosmos3_domain: str | None = None  # Cosmos 3's domain_name (vLLM-Omni's EMBODIMENT_TO_DOMAIN_ID key)
    cosmos3_action: str | None = None  # the action variant Cosmos 3's checkpoints take in that domain
    cosmos3_domain_id: int | None = None  # its id in that table
    source: str = field(default="", compare=False)

    @property
    def action(self) -> VectorSpec:
        """The default action variant (the canonical one the model consumes)."""
        return self.actions[self.default_action]

    @property
    def action_dims(self) -> int:
        return self.action.dims

    def camera(self, name: str) -> CameraSpec:
        for c in self.cameras:
            if c.name == name:
                return c
        raise UnknownName(f"embodiment {self.name!r} has no camera {name!r}; cameras are {[c.name for c in self.cameras]}")

    def action_variant(self, name: str | None = None) -> VectorSpec:
        """An action variant by name (default: `default_action`), with an error listing the options."""
        name = name or self.default_action
        if name not in self.actions:
            raise SpecError(
                f"embodiment {self.name!r} has no action variant {name!r}; choose one of {sorted(self.actions)}"
            )
        return self.actions[name]


# ---------------------------------------------------------------- parsing


def _require(table: dict, key: str, where: str, types: type | tuple[type, ...]):
    if key not in table:
        raise SpecError(f"{where}: missing required field {key!r}; add `{key} = ...`")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise SpecError(f"{where}: field {key!r} = {value!r} has type {type(value).__name__}, expected {types}")
    return value


def _key(cam: dict, where: str) -> str | None:
    key = cam.get("key")
    if key is not None and not (isinstance(key, str) and (key == "observation.image" or key.startswith("observation.images."))):
        raise SpecError(f"{where}: key = {key!r}; a camera key is 'observation.image' or 'observation.images.<name>'")
    return key


def _choice(table: dict, key: str, where: str, options: tuple[str, ...], default: str):
    value = table.get(key, default)
    if value not in options:
        raise SpecError(f"{where}: field {key!r} = {value!r} is not one of {list(options)}")
    return value


def _limits(value, dims: int, where: str, key: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.shape == (1,):
        arr = np.repeat(arr, dims)
    if arr.shape != (dims,):
        raise SpecError(f"{where}: field {key!r} has {arr.size} values, expected 1 or dims={dims}")
    return arr


def _parse_field(table: dict, where: str) -> FieldSpec:
    name = _require(table, "name", where, str)
    where = f"{where} field {name!r}"
    dims = _require(table, "dims", where, int)
    if dims < 1:
        raise SpecError(f"{where}: dims = {dims} must be >= 1")
    lower = _limits(_require(table, "lower", where, (int, float, list)), dims, where, "lower")
    upper = _limits(_require(table, "upper", where, (int, float, list)), dims, where, "upper")
    if np.any(lower > upper):
        raise SpecError(f"{where}: lower {lower.tolist()} exceeds upper {upper.tolist()}; swap them")
    names = tuple(table.get("names", ()))
    if names and len(names) != dims:
        raise SpecError(f"{where}: {len(names)} names given for dims = {dims}")
    rotation = _choice(table, "rotation", where, ROTATION_FORMATS, "") if "rotation" in table else None
    return FieldSpec(
        name=name,
        dims=dims,
        unit=_require(table, "unit", where, str),
        lower=lower,
        upper=upper,
        representation=_choice(table, "representation", where, REPRESENTATIONS, "absolute"),
        rotation=rotation,
        normalization=_choice(table, "normalization", where, NORMALIZATION_MODES, "quantile"),
        names=names,
        max_delta=None if table.get("max_delta") is None else float(_require(table, "max_delta", where, (int, float))),
        integrates=table.get("integrates"),
    )


def _parse_vector(name: str, table: dict, where: str, chunk_default: int) -> VectorSpec:
    fields = table.get("fields", [])
    if not isinstance(fields, list):
        raise SpecError(f"{where}: 'fields' must be an array of tables ([[...fields]])")
    parsed = tuple(_parse_field(f, where) for f in fields)
    names = [f.name for f in parsed]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: duplicate field names {names}")
    return VectorSpec(name=name, fields=parsed, chunk_length=int(table.get("chunk_length", chunk_default)))


def flat_names(names):
    """LeRobot feature `names` as a list: a list as it is, a one-entry table ({"motors": [...]}) its list."""
    return next(iter(names.values())) if isinstance(names, dict) and len(names) == 1 else names


def _lerobot_names(table, where: str, state_dims: int, action_dims: dict[str, int]) -> dict:
    """[lerobot] state_names / action_names: the `names` LeRobot's info.json gives a reference dataset's
    observation.state / action, a list or a one-entry table of a list, of the vector's length; port_robot_type:
    the robot_type LeRobot's own port of this robot's data writes."""
    if not isinstance(table, dict) or set(table) - {"state_names", "action_names", "port_robot_type"}:
        raise SpecError(f"{where}: [lerobot] takes state_names, action_names and port_robot_type, e.g. "
                        "state_names = {motors = [\"motor_0\", \"motor_1\"]}")
    out = {}
    if "port_robot_type" in table:
        if not isinstance(table["port_robot_type"], str):
            raise SpecError(f"{where}: [lerobot] port_robot_type = {table['port_robot_type']!r}; give a string")
        out["port_robot_type"] = table["port_robot_type"]
    for key, dims in (("state_names", {state_dims}), ("action_names", set(action_dims.values()))):
        if key not in table:
            continue
        names = table[key]
        flat = flat_names(names)
        if not isinstance(flat, list) or not all(isinstance(n, str) for n in flat) or len(flat) not in dims:
            raise SpecError(f"{where}: [lerobot] {key} = {names!r}; give a list of {sorted(dims)} names or a "
                            "one-entry table of one, as LeRobot's info.json writes them")
        out[key.split("_")[0]] = names
    return out


def parse_spec(data: dict, source: str = "<dict>") -> EmbodimentSpec:
    """Build an `EmbodimentSpec` from a parsed TOML table; errors name `source` and the field."""
    where = f"spec {source}"
    name = _require(data, "name", where, str)
    control_hz = float(_require(data, "control_hz", where, (int, float)))
    video_fps = float(_require(data, "video_fps", where, (int, float)))
    for key, value in (("control_hz", control_hz), ("video_fps", video_fps)):
        if value <= 0:
            raise SpecError(f"{where}: {key} = {value} must be > 0")
    chunk_length = _require(data, "chunk_length", where, int)
    actions_table = _require(data, "actions", where, dict)
    if not actions_table:
        raise SpecError(f"{where}: 'actions' has no variant; add [actions.<variant>] with [[actions.<variant>.fields]]")
    actions = {
        k: _parse_vector(k, v, f"{where} [actions.{k}]", chunk_length) for k, v in actions_table.items()
    }
    default_action = data.get("default_action", next(iter(actions)))
    if default_action not in actions:
        raise SpecError(f"{where}: default_action = {default_action!r} is not one of {sorted(actions)}")
    cameras = []
    for i, cam in enumerate(data.get("cameras", [])):
        cwhere = f"{where} [[cameras]] #{i}"
        cameras.append(
            CameraSpec(
                name=_require(cam, "name", cwhere, str),
                height=_require(cam, "height", cwhere, int),
                width=_require(cam, "width", cwhere, int),
                viewpoint=_choice(cam, "viewpoint", cwhere, VIEWPOINTS, "third_person"),
                calibration=cam.get("calibration"),
                dataset_key=_key(cam, cwhere),
            )
        )
    camera_names = [c.name for c in cameras]
    concat_view = tuple(data.get("concat_view", ()))
    unknown = [c for c in concat_view if c not in camera_names]
    if unknown:
        raise SpecError(f"{where}: concat_view names unknown cameras {unknown}; cameras are {camera_names}")
    cosmos3 = data.get("cosmos3", {})
    if not isinstance(cosmos3, dict) or not isinstance(cosmos3.get("domain_name", ""), str) \
            or not isinstance(cosmos3.get("domain_id", 0), int):
        raise SpecError(f"{where}: [cosmos3] must be a table with domain_name = \"<Cosmos 3 domain>\" and "
                        "domain_id = <its id in vLLM-Omni's EMBODIMENT_TO_DOMAIN_ID>")
    cosmos3_action = cosmos3.get("action", default_action if "domain_name" in cosmos3 else None)
    if cosmos3_action is not None and cosmos3_action not in actions:
        raise SpecError(f"{where}: [cosmos3] action = {cosmos3_action!r} is not one of {sorted(actions)}")
    lerobot_names = _lerobot_names(data.get("lerobot", {}), where, state_dims=sum(
        int(f.get("dims", 1)) for f in data.get("state", []) if isinstance(f, dict)),
        action_dims={n: sum(int(f.get("dims", 1)) for f in v.get("fields", []) if isinstance(f, dict))
                     for n, v in data.get("actions", {}).items() if isinstance(v, dict)})
    gripper_open = data.get("gripper_open")
    if gripper_open not in (None, 0, 1):
        raise SpecError(f"{where}: gripper_open = {gripper_open!r}, expected 0 or 1 (the value meaning open)")
    return EmbodimentSpec(
        name=name,
        kind=_choice(data, "kind", where, KINDS, _require(data, "kind", where, str)),
        domain_id=_require(data, "domain_id", where, int),
        description=data.get("description", ""),
        control_hz=control_hz,
        video_fps=video_fps,
        chunk_length=chunk_length,
        actions=actions,
        default_action=default_action,
        state=_parse_vector("state", {"fields": data.get("state", [])}, f"{where} [[state]]", 1),
        cameras=tuple(cameras),
        gripper_open=None if gripper_open is None else float(gripper_open),
        concat_view=concat_view,
        task=data.get("task", ""),
        robot_type=data.get("robot_type", ""),
        lerobot_names=lerobot_names,
        cosmos3_domain=cosmos3.get("domain_name"),
        cosmos3_action=cosmos3_action,
        cosmos3_domain_id=cosmos3.get("domain_id"),
        source=source,
    )


def _shipped_dir():
    return resources.files("cosmos3_robot.embodiments") / "specs"


def list_embodiments() -> list[str]:
    """Names of the spec files shipped in the package, sorted by domain id."""
    names = [p.name[: -len(".toml")] for p in _shipped_dir().iterdir() if p.name.endswith(".toml")]
    return sorted(names, key=lambda n: load_spec(n).domain_id)


@cache
def _load_shipped(name: str) -> EmbodimentSpec:
    path = _shipped_dir() / f"{name}.toml"
    return parse_spec(tomllib.loads(path.read_text()), source=f"{name}.toml")


def load_spec(name_or_path: str | Path) -> EmbodimentSpec:
    """Load a shipped spec by name (`"pusht"`) or any spec file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise SpecError(f"spec file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"spec file {str(path)!r} is not valid TOML: {e}") from e
        return parse_spec(data, source=str(path))
    name = str(name_or_path)
    if not (_shipped_dir() / f"{name}.toml").is_file():
        shipped = sorted(p.name[:-5] for p in _shipped_dir().iterdir() if p.name.endswith(".toml"))
        raise SpecError(
            f"unknown embodiment {name!r}; shipped embodiments are {shipped}, or pass a path to a .toml spec file"
        )
    return _load_shipped(name)
