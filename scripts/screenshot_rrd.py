"""Look at an .rrd as a user would, without a display: serve it with Rerun's web viewer, open it in headless
Chromium and save a screenshot through the DevTools protocol once the viewer has loaded (its wasm takes
20-60 s on a software rasterizer). Needs `apt-get install chromium`.

    .venv/bin/python scripts/screenshot_rrd.py outputs/demo_droid.rrd docs/rerun_franka.png [--wait 90]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


async def capture(ws_url: str, out: Path, wait: float, width: int, height: int) -> None:
    import websockets

    async with websockets.connect(ws_url, max_size=2**28) as ws:
        async def call(i, method, **params):
            await ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("id") == i:
                    return msg.get("result", {})

        await call(1, "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                   mobile=False)
        await asyncio.sleep(wait)
        shot = await call(2, "Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rrd")
    p.add_argument("out")
    p.add_argument("--wait", type=float, default=90.0, help="seconds for the viewer to load before the screenshot")
    p.add_argument("--size", default="1600x1000")
    a = p.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    width, height = (int(v) for v in a.size.split("x"))
    rerun = Path(sys.executable).parent / "rerun"
    viewer = subprocess.Popen([str(rerun), "--serve-web", "--web-viewer-port", "9091", "--port", "9877", a.rrd],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    profile = tempfile.mkdtemp()
    url = "http://127.0.0.1:9091/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A9877%2Fproxy"
    chrome = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader",
                               "--enable-unsafe-swiftshader", f"--user-data-dir={profile}",
                               "--remote-debugging-port=9222", f"--window-size={width},{height}", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(60):
            try:
                pages = json.loads(urllib.request.urlopen("http://127.0.0.1:9222/json").read())
                page = next(p for p in pages if p.get("type") == "page")
                break
            except (OSError, StopIteration):
                time.sleep(1)
        else:
            raise SystemExit("Chromium's DevTools endpoint did not come up")
        asyncio.run(capture(page["webSocketDebuggerUrl"], Path(a.out), a.wait, width, height))
        print(f"wrote {a.out}")
    finally:  # the viewer and the browser each leave children: end their whole process groups
        for proc in (chrome, viewer):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
