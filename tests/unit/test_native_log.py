"""TensorFlow's native start-up notices are dropped from stderr; anything else is kept."""

from __future__ import annotations

import subprocess
import sys

from fuserec_os.learn.native_log import keep

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795946364.580309   28903 port.cc:153] oneDNN custom operations are on. You may see ...",
    "I0000 00:00:1795946364.584149   28903 cudart_stub.cc:31] Could not find cuda drivers on your machine",
    "E0000 00:00:1795946367.327125   28903 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
]


def test_known_noise_is_dropped_and_real_errors_kept() -> None:
    assert not any(keep(line) for line in NOISE)
    assert keep("E0000 00:00:1.0 1 some_op.cc:10] Out of memory while allocating tensor")
    assert keep("Traceback (most recent call last):")
    assert not keep("   ")


def test_filter_applies_to_native_writes_to_fd_2() -> None:
    code = (
        "import os, sys\n"
        "from fuserec_os.learn.native_log import filtered_native_stderr\n"
        "with filtered_native_stderr():\n"
        f"    os.write(2, {NOISE[1]!r}.encode() + b'\\n')\n"
        "    os.write(2, b'a real problem\\n')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stderr == "a real problem\n"
