"""Read logged frames back out of an .rrd (rerun's dataframe API) and lay them out as one PNG:
the render check a person looks at, e.g. docs/rollout_frames.png."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import rerun as rr
from ..errors import UnknownName


def read_images(rrd: str | Path, entity: str) -> dict[int, np.ndarray]:
    """step -> RGB image of a JPEG `EncodedImage` entity in an .rrd."""
    table = rr.chunk.RrdReader(str(rrd)).stream().collect().reader(index="step").to_arrow_table()
    col = f"/{entity.strip('/')}:EncodedImage:blob"
    if col not in table.column_names:
        raise UnknownName(f"{str(rrd)!r} has no images at {entity!r}; columns: {table.column_names}")
    steps = table.column("step").to_pylist()
    out = {}
    for step, blob in zip(steps, table.column(col).to_pylist()):
        if blob is None:
            continue
        data = np.frombuffer(bytes(blob[0] if isinstance(blob, list) else blob), np.uint8)
        out[int(step)] = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def contact_sheet(rrd: str | Path, entities: list[str], steps: list[int], out_png: str | Path, scale: int = 2) -> Path:
    """Rows = entities (e.g. real / predicted / abs_diff), columns = steps; labels drawn in."""
    rows = []
    for entity in entities:
        images = read_images(rrd, entity)
        tiles = []
        for s in steps:
            img = images.get(s, np.zeros_like(next(iter(images.values()))))
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            cv2.putText(img, f"{entity.split('/')[-1]} t={s}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (255, 0, 0), 1, cv2.LINE_AA)
            tiles.append(np.pad(img, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return Path(out_png)
