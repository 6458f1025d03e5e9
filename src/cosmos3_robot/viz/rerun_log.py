"""Rerun logging of rollouts and dataset episodes.

Layout (entity paths):
  cameras/<cam>/real, cameras/<cam>/predicted, cameras/<cam>/abs_diff   JPEG `EncodedImage`s
  cameras/<cam>/real/ee_path, cameras/<cam>/predicted/ee_path        end-effector path projected (2-D), each
                                                                      run's own (real states / predicted ones)
  actions/<field>/<dim>, state/<field>/<dim>, success_probability    scalar series (bulk `send_columns`)
  disagreement/spread                                               the learned sim's per-step uncertainty
  world/ee_path, world/ee_path_predicted (LineStrips3D), world/ee     end-effector in 3-D
  world/cameras/<cam> (Transform3D + Pinhole), .../image              calibrated frustums with the frame
Timelines: `step` (control step) and `time` (seconds at the spec's control rate).
An evaluation's trust view (`save_eval_report`): trust/<policy>/{probability,learned,real} on an `episode`
timeline, and trust/success/{policies,estimate_ci95,diagonal} (the learned-vs-real success plot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from ..embodiments import CameraCalibration, EmbodimentSpec, camera_name, load_spec
from ..embodiments.world_frame import end_effector_path
from ..errors import UserError


@dataclass
class RolloutLog:
    """What one rollout (or dataset episode) shows: per-camera frames (T, H, W, 3) uint8, actions
    (T, D), states (T, S), optional success probabilities (T,) and end-effector path (T, 3)."""

    spec: EmbodimentSpec
    real: dict[str, np.ndarray] = field(default_factory=dict)
    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    actions: np.ndarray | None = None
    states: np.ndarray | None = None
    predicted_states: np.ndarray | None = None  # the learned simulator's states (T', S): its own path
    success_prob: np.ndarray | None = None
    disagreement: np.ndarray | None = None  # the learned simulator's per-step uncertainty (T,)
    ee_path: np.ndarray | None = None
    calibrations: dict[str, CameraCalibration] = field(default_factory=dict)
    name: str = "rollout"
    action_variant: str | None = None  # which of the spec's action variants `actions` holds (default one)

    def __len__(self) -> int:
        for arr in (*self.real.values(), *self.predicted.values(), self.actions, self.states):
            if arr is not None:
                return len(arr)
        return 0


def spec_calibrations(spec: EmbodimentSpec) -> dict[str, CameraCalibration]:
    return {c.name: CameraCalibration.from_dict({**c.calibration, "name": c.name})
            for c in spec.cameras if c.calibration}


def _jpeg(image: np.ndarray, quality: int) -> rr.EncodedImage:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise UserError(f"JPEG encoding failed for an image of shape {image.shape}")
    return rr.EncodedImage(contents=buf.tobytes(), media_type="image/jpeg")


def blueprint(log: RolloutLog) -> rrb.Blueprint:
    cams = sorted({*log.real, *log.predicted})
    views = []
    for cam in cams:
        for kind in ("real", "predicted", "abs_diff"):
            if kind == "abs_diff" and not (cam in log.real and cam in log.predicted):
                continue
            if cam in (log.real if kind == "real" else log.predicted if kind == "predicted" else log.real):
                views.append(rrb.Spatial2DView(origin=f"cameras/{cam}/{kind}", name=f"{cam} {kind}"))
    series = [rrb.TimeSeriesView(origin="actions", name="actions")]
    if log.states is not None:
        series.append(rrb.TimeSeriesView(origin="state", name="state"))
    if log.success_prob is not None:
        series.append(rrb.TimeSeriesView(origin="success_probability", name="success probability"))
    if log.disagreement is not None:
        series.append(rrb.TimeSeriesView(origin="disagreement", name="learned-sim disagreement"))
    # the frames take most of the window; the 3-D view starts framed on the workspace, not on the far cameras
    ee = log.ee_path if log.ee_path is not None else end_effector_path(log.spec, log.states)
    eye = None
    if ee is not None and len(ee):
        centre = ee.mean(0)
        reach = max(float(np.ptp(ee, axis=0).max()), 0.1)
        eye = rrb.EyeControls3D(position=centre + np.array([-1.6, -1.6, 1.4]) * reach, look_target=centre,
                                eye_up=[0.0, 0.0, 1.0])
    world = rrb.Spatial3DView(origin="world", name="3-D: end effector and cameras", eye_controls=eye)
    return rrb.Blueprint(rrb.Vertical(
        rrb.Horizontal(rrb.Grid(*views, grid_columns=3 if len(views) >= 3 else len(views) or 1), world,
                       column_shares=[3, 1]),
        rrb.Horizontal(*series),
        row_shares=[3, 1],
    ), collapse_panels=True)


def _scalar_columns(rec, prefix: str, names: tuple[str, ...], values: np.ndarray, steps: np.ndarray, fps: float):
    """One entity per dimension, all rows in one `send_columns` call each (bulk, not per step)."""
    for j, name in enumerate(names):
        rr.send_columns(f"{prefix}/{name.replace('.', '/')}",
                        indexes=[rr.TimeColumn("step", sequence=steps), rr.TimeColumn("time", duration=steps / fps)],
                        columns=rr.Scalars.columns(scalars=values[:, j].astype(np.float64)), recording=rec)


def log_rollout(log: RolloutLog, rec: rr.RecordingStream, jpeg_quality: int = 85) -> None:
    """Log a rollout into an open recording (see module docstring for the layout)."""
    spec, T = log.spec, len(log)
    steps = np.arange(T)
    fps = spec.control_hz
    rec.send_blueprint(blueprint(log))
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    calibs = log.calibrations or spec_calibrations(spec)
    ee = log.ee_path if log.ee_path is not None else end_effector_path(spec, log.states)
    for cam, calib in calibs.items():
        c2w = calib.camera_to_world
        rec.log(f"world/cameras/{cam}", rr.Transform3D(translation=c2w[:3, 3], mat3x3=c2w[:3, :3]), static=True)
        rec.log(f"world/cameras/{cam}", rr.Pinhole(image_from_camera=calib.K, resolution=[calib.width, calib.height],
                                                  camera_xyz=rr.ViewCoordinates.RDF), static=True)
    ee_pred = end_effector_path(spec, log.predicted_states)
    if ee is not None:
        rec.log("world/ee_path", rr.LineStrips3D([ee], colors=[[80, 160, 255]]), static=True)
    if ee_pred is not None:
        rec.log("world/ee_path_predicted", rr.LineStrips3D([ee_pred], colors=[[255, 140, 40]]), static=True)
    projected = {cam: calib.project(ee) for cam, calib in calibs.items()} if ee is not None else {}
    projected_pred = {cam: calib.project(ee_pred) for cam, calib in calibs.items()} if ee_pred is not None else {}
    for t in range(T):
        rec.set_time("step", sequence=t)
        rec.set_time("time", duration=t / fps)
        for cam, frames in log.real.items():
            rec.log(f"cameras/{cam}/real", _jpeg(frames[t], jpeg_quality))
            if cam in calibs:
                rec.log(f"world/cameras/{cam}/image", _jpeg(frames[t], jpeg_quality))
            if cam in projected:
                rec.log(f"cameras/{cam}/real/ee_path", rr.Points2D(projected[cam][: t + 1], radii=0.6))
        for cam, frames in log.predicted.items():
            rec.log(f"cameras/{cam}/predicted", _jpeg(frames[t], jpeg_quality))
            if cam in projected_pred:
                rec.log(f"cameras/{cam}/predicted/ee_path", rr.Points2D(projected_pred[cam][: t + 1], radii=0.6,
                                                                         colors=[[255, 140, 40]]))
            if cam in log.real:
                diff = np.abs(frames[t].astype(np.int16) - log.real[cam][t].astype(np.int16)).astype(np.uint8)
                rec.log(f"cameras/{cam}/abs_diff", _jpeg(diff, jpeg_quality))
        if ee is not None:
            rec.log("world/ee", rr.Points3D(ee[t : t + 1], radii=0.01))
    if log.actions is not None:
        actions = np.asarray(log.actions)
        vec = spec.action_variant(log.action_variant)
        if actions.shape[1] != vec.dims:
            raise UserError(f"actions have {actions.shape[1]} dims, action variant {vec.name!r} of {spec.name!r} has"
                             f" {vec.dims}; set RolloutLog.action_variant to one of {sorted(spec.actions)}")
        _scalar_columns(rec, "actions", vec.dim_names, actions, steps, fps)
    if log.states is not None and spec.state.dims:
        _scalar_columns(rec, "state", spec.state.dim_names, np.asarray(log.states), steps, fps)
    if log.success_prob is not None:
        _scalar_columns(rec, "success_probability", ("p",), np.asarray(log.success_prob)[:, None], steps, fps)
    if log.disagreement is not None:
        d = np.asarray(log.disagreement, np.float64)[: len(steps)]
        _scalar_columns(rec, "disagreement", ("spread",), d[:, None], steps[: len(d)], fps)


def open_recording(name: str, rrd: str | Path | None = None, spawn: bool = False, serve: bool = False
                   ) -> rr.RecordingStream:
    """A recording saved to `rrd` (the default, headless), or sent to a spawned / served viewer."""
    rec = rr.RecordingStream("cosmos3_robot", recording_id=name)
    if spawn:
        rec.spawn()
    elif serve:
        rec.serve_grpc()
    else:
        Path(rrd).parent.mkdir(parents=True, exist_ok=True)
        rec.save(str(rrd))
    return rec


def save_rollout(log: RolloutLog, rrd: str | Path, jpeg_quality: int = 85) -> Path:
    rec = open_recording(log.name, rrd)
    log_rollout(log, rec, jpeg_quality)
    rec.flush()
    rec.disconnect()
    return Path(rrd)


def episode_log(episode: dict, spec: EmbodimentSpec | str, name: str = "episode") -> RolloutLog:
    """A LeRobot (`load_episodes`) or DROID-layout (`read_droid_episode`) episode as a RolloutLog."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    names = {c.key: c.name for c in spec.cameras}
    frames = {names.get(k, camera_name(k)): v for k, v in episode["frames"].items()}
    variant = episode.get("metadata", {}).get("action_variant")
    if variant is None and episode.get("action") is not None:  # LeRobot: the variant with the stored width
        widths = [k for k, v in spec.actions.items() if v.dims == np.shape(episode["action"])[-1]]
        variant = spec.default_action if spec.default_action in widths or not widths else widths[0]
    return RolloutLog(spec=spec, real=frames, actions=episode.get("action"), states=episode.get("state"),
                      calibrations=episode.get("calibrations") or {}, name=name, action_variant=variant)


def save_eval_report(report: dict, rrd: str | Path) -> Path:
    """An evaluation's trust view as an .rrd: per policy, the per-episode learned success probability, the one
    learned outcome and the real outcome as series on an `episode` timeline (`trust/<policy>/...`), and the
    success plot `trust/success`: each policy at (real success, learned success) in a 100 x 100 square (learned
    up), the real-success estimate's 95% interval as a horizontal bar through it, and the diagonal."""
    rec = open_recording("eval_trust", rrd)
    rec.log("trust/success/diagonal", rr.LineStrips2D([[[0, 100], [100, 0]]], colors=[[128, 128, 128]],
                                                      radii=0.2), static=True)
    points, labels, bars = [], [], []
    for name, row in report["policies"].items():
        learned, real = row.get("learned", {}), row.get("real")
        entity = "trust/" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        per_episode = {"learned": learned.get("episodes"), "probability": learned.get("probability_per_episode"),
                       "real": real.get("episodes") if real else None}
        for series, values in per_episode.items():
            if values:
                values = np.asarray(values, np.float64)
                rr.send_columns(f"{entity}/{series}", indexes=[rr.TimeColumn("episode", sequence=np.arange(len(values)))],
                                columns=rr.Scalars.columns(scalars=values), recording=rec)
        if real is None or "success" not in learned:
            continue
        y = 100 * (1 - learned["success"])
        points.append([100 * real["success"], y])
        labels.append(name)
        if "estimate" in row:
            lo, hi = row["estimate"]["ci95"]
            bars.append([[100 * lo, y], [100 * hi, y]])
    if points:
        rec.log("trust/success/policies", rr.Points2D(points, labels=labels, radii=1.0), static=True)
    if bars:
        rec.log("trust/success/estimate_ci95", rr.LineStrips2D(bars, radii=0.4), static=True)
    rec.flush()
    rec.disconnect()
    return Path(rrd)
