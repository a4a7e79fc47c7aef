"""Keep engines' native log lines (C++ code writing straight to file descriptor 2) off the user's console.

TensorFlow's converter (under litert-torch) and LiteRT's interpreter log through absl/glog, below
Python, so ``contextlib.redirect_stderr`` cannot reach them: "I0000 … flatbuffer_export.cc] Estimated
count of arithmetic ops", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU". The block's
stderr goes to a temporary file instead and is replayed if the block raises, so a failure still
shows the engine's own explanation. No torch here: the runtime layer uses it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Send file descriptor 2 to a temp file for the block; replay it to stderr only if the block raises."""
    descriptor = 2  # native code writes to fd 2 whatever Python's sys.stderr is
    try:
        os.fstat(descriptor)
    except OSError:  # no fd 2 at all (some embedded interpreters)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(descriptor)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), descriptor)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, descriptor)
            os.close(saved)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode("utf-8", "replace"))
