"""Keep TensorFlow's native start-up chatter out of the user's terminal, but never a real error.

TensorFlow 2.21 writes absl/C++ log lines straight to file descriptor 2 (oneDNN notes, "could not find cuda
drivers", cuInit failures on GPU-less machines, tf.data attribute notices), ignoring TF_CPP_MIN_LOG_LEVEL.
They would bury the per-epoch progress. :func:`filtered_native_stderr` captures fd 2 for the duration of a
block and re-emits every line that is not one of those known harmless notices, so anything unexpected still
reaches the user.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

KNOWN_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|cudart_stub\.cc|"
    r"Could not find cuda drivers|cpu_feature_guard\.cc|To enable the following instructions|"
    r"failed call to cuInit|use_unbounded_threadpool|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation_placer\.cc|TF-TRT Warning"
)


def keep(line: str) -> bool:
    """Whether a captured stderr line should still be shown (it is not known TensorFlow noise)."""
    return bool(line.strip()) and not KNOWN_NOISE.search(line)


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Capture fd 2 in the block; afterwards write back only the lines :func:`keep` accepts."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if keep(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
