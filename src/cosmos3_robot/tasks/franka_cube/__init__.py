"""The Franka cube scene for the `droid` spec: MuJoCo pick-and-place with DROID's cameras and
calibration, IK, the pixel + calibration pick-and-place expert and its ladder, and the learned scene's pieces
(perception.py, kinematics.py, structured.py, train.py)."""

from ...backends.registry import register_task_entry_point
from ...embodiments.state_completion import register_state_completion
from .expert import LADDER, FrankaPickPlaceExpert, make_franka_policy
from .real import FrankaCubeRealEnv, FrankaIK, exterior_calibrations

SHIPPED_CHECKPOINT = "franka_cube"  # the learned simulator (scripts/train_franka_cube.sh)

__all__ = ["LADDER", "SHIPPED_CHECKPOINT", "FrankaCubeRealEnv", "FrankaIK", "FrankaPickPlaceExpert", "exterior_calibrations",
           "make_franka_policy"]

# its structured world, the only class a checkpoint of this task may name as "task"
register_task_entry_point("cosmos3_robot.tasks.franka_cube.structured:FrankaCubeWorld")


def _cartesian_from_joints(state, given):
    """DROID's cartesian_position (xyz + euler "xyz", base frame) from the joint positions, by the arm's chain."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    from ...embodiments import load_spec

    global _IK
    if "_IK" not in globals():
        _IK = FrankaIK()
    sl = load_spec("droid").state.slices()
    pos, rot = _IK.forward(np.asarray(state[sl["joint_positions"]], np.float64))
    out = np.array(state, np.float64)
    out[sl["cartesian_position"]] = np.concatenate([pos, Rotation.from_matrix(rot).as_euler("xyz")])
    return out


register_state_completion("droid", _cartesian_from_joints)


from ..registry import TaskInfo, register_task  # noqa: E402

register_task(TaskInfo(
    name="franka_cube", embodiment="droid", real_id="cosmos3_robot/FrankaCubeReal-v0",
    real_entry_point="cosmos3_robot.tasks.franka_cube.real:FrankaCubeRealEnv", learned_id="cosmos3_robot/FrankaCube-v0",
    checkpoint=SHIPPED_CHECKPOINT, episode_limit=200,
    policy_factory="cosmos3_robot.tasks.franka_cube:make_franka_policy",
    demo_policies=("expert", "expert-noise1.5", "random"), demo_real_kwargs={"cameras": ["exterior_1_left"]},
    trainer="cosmos3_robot.tasks.franka_cube.train:train_sim", aliases=("droid",),
    default_for=("serve-policy",)))
