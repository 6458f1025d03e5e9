import subprocess
import sys

from cosmos3_robot.cli import embodiment_rows, main
from cosmos3_robot.embodiments import list_embodiments, load_spec


def test_embodiments_table_lists_every_spec(capsys):
    assert main(["embodiments"]) == 0
    out = capsys.readouterr().out
    for name in list_embodiments():
        spec = load_spec(name)
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert spec.kind in line and f"({spec.action_dims}-D)" in line and spec.cameras[0].name in line


def test_rows_carry_rates_and_chunk():
    rows = {r["name"]: r for r in embodiment_rows()}
    assert rows["droid"]["control_hz"] == "15" and rows["droid"]["chunk"] == "16"
    assert rows["autonomous_vehicle"]["chunk"] == "60"


def test_embodiment_detail(capsys):
    assert main(["embodiments", "droid"]) == 0
    out = capsys.readouterr().out
    assert "joint_position: 8-D, chunk 32" in out and "ee_rotation" in out


def test_unknown_embodiment_exit_code(capsys):
    assert main(["embodiments", "franka"]) == 2
    assert "unknown embodiment 'franka'" in capsys.readouterr().err


def test_console_script_demo_runs():
    exe = [sys.executable, "-m", "cosmos3_robot.cli", "demo"]
    res = subprocess.run(exe, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "pusht" in res.stdout and "egocentric" in res.stdout
