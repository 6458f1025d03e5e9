"""Lossless MP4 (H.264 RGB: libx264rgb, crf 0) to and from files or bytes, through PyAV: a round trip
returns the exact frames. DROID-layout episodes and the video API (`serve`, `backends.remote`) use it."""

from __future__ import annotations

import io
from pathlib import Path

import av
import cv2
import numpy as np
from ..errors import UserError

av.logging.set_level(av.logging.ERROR)  # libx264 prints per-file statistics otherwise


def write_mp4(target, frames: np.ndarray, fps: float) -> None:
    """(T, H, W, 3) uint8 -> an MP4 at `target` (a path or a writable binary file object)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UserError(f"frames have shape {frames.shape} and dtype {frames.dtype}; expected (T, H, W, 3) uint8")
    with av.open(str(target) if isinstance(target, (str, Path)) else target, "w", format="mp4") as container:
        stream = container.add_stream("libx264rgb", rate=max(1, int(round(fps))))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_mp4(source) -> np.ndarray:
    """An MP4 (a path or a readable binary file object) -> (T, H, W, 3) uint8 RGB."""
    with av.open(str(source) if isinstance(source, (str, Path)) else source) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def mp4_bytes(frames: np.ndarray, fps: float) -> bytes:
    buf = io.BytesIO()
    write_mp4(buf, frames, fps)
    return buf.getvalue()


def frames_from_mp4(data: bytes) -> np.ndarray:
    return read_mp4(io.BytesIO(data))


def resize_to(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, h, w, 3) uint8 -> (N, height, width, 3): area resampling down, bilinear up; no-op when equal."""
    if frames.shape[1:3] == (height, width):
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] * frames.shape[2] > height * width else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in frames])
