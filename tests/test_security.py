"""Loading never runs code: checkpoints and training state are files users share."""

import json
import pickle
import shutil

import pytest
import torch

from cosmos3_robot.backends import load_backend, shipped_checkpoint
from cosmos3_robot.model.checkpoint import CheckpointError
from cosmos3_robot.train.world_model import load_trainer_state


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling this would create the marker file


def test_a_crafted_trainer_state_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "trainer_state.pt"
    with open(path, "wb") as f:
        pickle.dump({"stage": "render", "step": 0, "x": _Payload(str(marker))}, f)
    with pytest.raises(ValueError, match="is not a resumable trainer state"):
        load_trainer_state(path)
    assert not marker.exists()
    torch.save({"stage": "render", "step": 3, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}}, path)
    assert load_trainer_state(path)["step"] == 3  # a real one still resumes


def test_a_checkpoint_naming_an_arbitrary_module_is_refused_without_importing_it(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(shipped_checkpoint("pusht_tower"), ckpt)
    marker = tmp_path / "ran"
    (tmp_path / "payload.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass World: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for task in ("payload:World", "os:system", "subprocess:Popen"):
        config = json.loads((ckpt / "config.json").read_text())
        config["task"] = task
        (ckpt / "config.json").write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match="which no registered task provides"):
            load_backend(ckpt)
    assert not marker.exists()
