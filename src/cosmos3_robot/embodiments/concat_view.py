"""The `concat_view` camera arrangement: the first camera (wrist) full size on top, the others
scaled by 1/(n-1) and placed side by side below (DROID: two exteriors at half size), so several
cameras become one frame for the model. Each sub-view keeps a calibration in canvas pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .calibration import CameraCalibration
from ..errors import UnknownName, UserError


@dataclass(frozen=True)
class ConcatLayout:
    """Where each camera lands on the canvas: name -> (x0, y0, width, height) and its scale."""

    height: int
    width: int
    regions: dict[str, tuple[int, int, int, int]]
    scales: dict[str, float]

    @classmethod
    def build(cls, cameras: list[tuple[str, int, int]]) -> ConcatLayout:
        """`cameras`: (name, height, width) in layout order; all must share one resolution."""
        if len(cameras) < 2:
            raise UserError("concat_view needs at least two cameras (one on top, one or more below)")
        sizes = {(h, w) for _, h, w in cameras}
        if len(sizes) != 1:
            raise UserError(f"concat_view cameras must share one resolution, got {sorted(sizes)}")
        (h, w), = sizes
        n_below = len(cameras) - 1
        if w % n_below or h % n_below:
            raise UserError(f"camera size {h}x{w} does not divide into {n_below} sub-views below")
        sh, sw = h // n_below, w // n_below
        regions = {cameras[0][0]: (0, 0, w, h)}
        scales = {cameras[0][0]: 1.0}
        for i, (name, _, _) in enumerate(cameras[1:]):
            regions[name] = (i * sw, h, sw, sh)
            scales[name] = 1.0 / n_below
        return cls(height=h + sh, width=w, regions=regions, scales=scales)

    @classmethod
    def from_spec(cls, spec) -> ConcatLayout:
        if not spec.concat_view:
            raise UserError(f"embodiment {spec.name!r} declares no concat_view")
        return cls.build([(c, spec.camera(c).height, spec.camera(c).width) for c in spec.concat_view])

    def compose(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Per-camera (H, W, C) images -> one (height, width, C) canvas (area resampling)."""
        missing = [n for n in self.regions if n not in images]
        if missing:
            raise UnknownName(f"concat_view needs images for cameras {missing}")
        first = images[next(iter(self.regions))]
        canvas = np.zeros((self.height, self.width, *first.shape[2:]), dtype=first.dtype)
        for name, (x0, y0, w, h) in self.regions.items():
            img = images[name]
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            canvas[y0 : y0 + h, x0 : x0 + w] = img.reshape(h, w, *first.shape[2:])
        return canvas

    def split(self, canvas: np.ndarray) -> dict[str, np.ndarray]:
        """The canvas back into its sub-views (each at its canvas size)."""
        return {n: canvas[y0 : y0 + h, x0 : x0 + w] for n, (x0, y0, w, h) in self.regions.items()}

    def calibrations(self, calibrations: dict[str, CameraCalibration]) -> dict[str, CameraCalibration]:
        """Each camera's calibration in canvas pixels: scaled to its sub-view, shifted to its origin.
        A projected point is valid for that camera only inside `regions[name]`."""
        out = {}
        for name, (x0, y0, _, _) in self.regions.items():
            s = self.scales[name]
            out[name] = calibrations[name].scaled(s).shifted(x0, y0, self.width, self.height)
        return out
