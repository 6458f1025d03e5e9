"""Seeing the Franka cube scene from pixels and the cameras' calibration (no simulator state): the red
cube and the green target by colour; on the table by casting pixel rays onto a plane; in the air by
triangulating the cube's blob from the two exterior cameras."""

from __future__ import annotations

import cv2
import numpy as np

from ...embodiments import CameraCalibration
from ...embodiments.perception import largest_blob, pixel_rays_to_plane

CAMERA = "exterior_1_left"
EXTERIORS = ("exterior_1_left", "exterior_2_left")
# HSV ranges (OpenCV: H in [0, 180)) of the scene's red cube and green target.
RED = [((0, 120, 60), (8, 255, 255)), ((172, 120, 60), (180, 255, 255))]
GREEN = [((45, 120, 60), (80, 255, 255))]


def find_on_table(image: np.ndarray, calib: CameraCalibration, ranges, z: float):
    """Centroid (x, y) and yaw (mod 90 degrees) of the largest blob of a colour, on the plane z;
    None when the colour is not visible."""
    pixels = largest_blob(image, ranges)
    if pixels is None:
        return None
    points = pixel_rays_to_plane(calib, pixels, z)
    (_, _), (_, _), angle = cv2.minAreaRect(points[:, :2].astype(np.float32))
    return points[:, :2].mean(0), np.deg2rad(angle) % (np.pi / 2)




def triangulate(calibs: list[CameraCalibration], pixels: list[np.ndarray]) -> np.ndarray:
    """One pixel (2,) per camera -> the base-frame point (3,) nearest all their viewing rays (least squares)."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for calib, px in zip(calibs, pixels):
        ray = np.r_[calib.normalized_coordinates(np.asarray(px, np.float64)[None])[0], 1.0]
        d = calib.camera_to_world[:3, :3] @ ray
        d /= np.linalg.norm(d)
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ calib.camera_to_world[:3, 3]
    return np.linalg.solve(A, b)


def locate_cube(images: dict[str, np.ndarray], calibs: dict[str, CameraCalibration], table_z: float,
                areas: dict | None = None):
    """The cube's centre (3,) from the exterior cameras: its blob's centroid triangulated from both where both
    see it, else the one camera's centroid on the plane z = `table_z`; None where neither sees it. `areas`, a
    dict, receives each camera's blob size in pixels (a hand in front of the cube shrinks it)."""
    blobs = {c: largest_blob(images[c], RED) for c in EXTERIORS if c in images}
    if areas is not None:
        areas.update({c: 0 if p is None else len(p) for c, p in blobs.items()})
    seen = {c: p.mean(0) for c, p in blobs.items() if p is not None and len(p) >= 4}
    if len(seen) == 2:
        return triangulate([calibs[c] for c in seen], list(seen.values()))
    if len(seen) == 1:
        (c, px), = seen.items()
        return pixel_rays_to_plane(calibs[c], px[None], table_z)[0]
    return None
