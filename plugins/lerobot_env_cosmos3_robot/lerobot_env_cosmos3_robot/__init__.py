"""Imported by LeRobot's register_third_party_plugins(): registers --env.type=cosmos3_robot."""

from cosmos3_robot.lerobot_plugin import Cosmos3RobotEnv  # noqa: F401
