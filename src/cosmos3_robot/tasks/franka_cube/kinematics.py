"""The Panda's kinematic chain (`embodiments.kinematics` on the scene's own model)."""

from __future__ import annotations

from ...embodiments import kinematics
from ...embodiments.kinematics import forward

__all__ = ["camera_mount", "chain_parameters", "forward"]


def chain_parameters(model=None, site: str = "end_effector") -> dict:
    from .real import franka_model

    return kinematics.chain_parameters(model or franka_model(), site=site)


def camera_mount(model=None, camera: str = "wrist_left") -> dict:
    from .real import franka_model

    return kinematics.camera_mount(model or franka_model(), camera, site="end_effector")
