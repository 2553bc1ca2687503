"""The real entry point, as a user starts it: python -m app --data-dir DIR."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def test_app_starts_registers_demo_model_and_quits_cleanly(tmp_path: Path, demo_model: Path) -> None:
    home = tmp_path / "portable"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("HEARTH_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--data-dir", str(home)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        models = home / "data" / "models.json"
        deadline = time.monotonic() + 60
        while not models.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert models.exists(), "the demo model was not registered on first start"
        assert json.loads(models.read_text())["models"][0]["path"] == str(demo_model)
        time.sleep(1.0)  # let the engine child start
        proc.send_signal(signal.SIGINT)  # Ctrl+C closes the window in order
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert (home / "config" / "config.json").exists()


def test_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "app", "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("Hearth ")


def test_self_test_flag_answers_and_exits_zero(tmp_path: Path, demo_model: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("HEARTH_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(tmp_path / "st"), "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test: ok" in result.stdout and "tokens/s" in result.stdout
    assert "Traceback" not in result.stderr


def test_self_test_fails_at_once_when_a_document_reader_is_missing(tmp_path: Path) -> None:
    """A build that lost python-docx (or its templates) must fail --self-test, and say why,
    rather than wait for the engine or time out."""
    shadow = tmp_path / "shadow" / "docx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated: python-docx is missing')\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(shadow.parent))
    env.pop("HEARTH_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "app", "--data-dir", str(tmp_path / "st"), "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the document readers are broken: ImportError: simulated" in result.stdout
