#!/usr/bin/env bash
# Make .venv with everything cosmos3-robot needs, then run the main job (`cosmos3-robot demo`).
# Usage: ./scripts/setup.sh [--no-demo]
set -euo pipefail
cd "$(dirname "$0")/.."

# Current lerobot needs Python >= 3.12 (see README "Install notes").
find_python() {
    for py in python3.12 python3.13; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for v in $(pyenv versions --bare | grep -E '^3\.1[2-9]' | sort -V); do  # 3.12 first: labmaze (dm-control) has no 3.13 wheel
            echo "$(pyenv root)/versions/$v/bin/python"; return 0
        done
    fi
    return 1
}

# torchcodec (lerobot's video decoder) needs a system FFmpeg.
if ! command -v ffmpeg >/dev/null 2>&1; then
    echo "[setup] installing ffmpeg from apt"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    PY=$(find_python) || { echo "[setup] error: need Python >= 3.12 (python3.12, python3.13 or pyenv); install one and rerun" >&2; exit 1; }
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing cosmos3-robot and its dependencies (first run: a few minutes, ~3 GB download)"
.venv/bin/python -m pip install -q -e '.[test]'
# LeRobot's env plugin (lerobot-eval --env.type=cosmos3_robot), found by its distribution name
.venv/bin/python -m pip install -q --no-deps -e plugins/lerobot_env_cosmos3_robot
.venv/bin/python -m pip check

# vLLM-Omni's own code (its video API models and Cosmos 3 action helpers), which the compatibility tests run
# against. Unpacked, not installed: its dependencies pull vllm and a CUDA torch (tests/vllm_omni_ref.py).
VLLM_OMNI=.venv/vllm-omni-0.30.0
if [ ! -d "$VLLM_OMNI/vllm_omni" ]; then
    echo "[setup] fetching vllm-omni 0.30.0 (the reference for the Cosmos 3 API tests)"
    tmp=$(mktemp -d)
    if .venv/bin/python -m pip download -q --no-deps vllm-omni==0.30.0 -d "$tmp" 2>/dev/null; then
        .venv/bin/python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
            "$tmp"/vllm_omni-0.30.0-*.whl "$VLLM_OMNI.partial" && mv "$VLLM_OMNI.partial" "$VLLM_OMNI"
    else
        echo "[setup] warning: could not fetch vllm-omni 0.30.0; its compatibility tests will be skipped" >&2
    fi
    rm -rf "$tmp"
fi

# openpi's own client and server (openpi-client 0.1.2, openpi-server 0.1.0) in a side venv of their own: they pin
# numpy<2, the project needs numpy>=2. The policy-protocol tests run them (tests/test_openpi.py).
OPENPI=.venv/openpi-venv
if [ ! -x "$OPENPI/bin/python" ] || ! "$OPENPI/bin/python" -c 'import openpi_client, openpi_server' 2>/dev/null; then
    echo "[setup] side venv with openpi-client and openpi-server (numpy<2)"
    "$(readlink -f .venv/bin/python)" -m venv --clear "$OPENPI" && "$OPENPI/bin/python" -m pip install -q \
        openpi-client==0.1.2 openpi-server==0.1.0 typing_extensions \
        || echo "[setup] warning: the openpi side venv could not be built; its tests will be skipped" >&2
fi

if [ "${1:-}" != "--no-demo" ]; then
    export MUJOCO_GL="${MUJOCO_GL:-egl}" HF_HUB_OFFLINE=1
    .venv/bin/cosmos3-robot demo
fi
