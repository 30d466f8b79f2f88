"""The speed benchmark's quick mode runs end to end (timings are not asserted: they live in bench/)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "speed.py"


def test_speed_benchmark_quick_mode_runs_and_every_implementation_agrees():
    result = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-memory"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x ours time" in result.stdout and "matmul peak" in result.stdout
    rows = json.loads(result.stderr.strip().splitlines()[-1])
    fp32 = [row for row in rows if row["precision"] == "fp32"]
    assert list(dict.fromkeys(row["config"] for row in fp32)) == ["A", "M", "C-train", "H", "V1", "loss"]
    assert [row["implementation"] for row in fp32 if row["config"] == "loss"] == ["ours", "two transforms (reference)"]
    at_a = [row["implementation"] for row in fp32 if row["config"] == "A"]
    onnx = ["onnxruntime"] if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript") else []
    assert at_a == ["ours", *onnx, "audio-separator", "splifft", "ours-upstream", "upstream"]
    # relative output (or gradient) differences; H (HyperACE, against splifft): its reference amplifies float32
    # rounding ~1e3x at random weights; tests/test_mask_heads.py checks it exactly
    assert all(row["agreement"] < (1e-3 if row["config"] == "H" else 1e-4) for row in fp32)
    assert all(row["agreement"] > 30 for row in rows if row["precision"] == "bf16")  # SNR in dB against fp32
    assert all(row["seconds"] > 0 and row["ratio"] > 0 for row in rows)
