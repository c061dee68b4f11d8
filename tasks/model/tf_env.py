"""One Keras in the process: tf_keras (Keras 2), set up before TensorFlow is first imported.

tensorflow-model-optimization only accepts tf_keras models and flips `tf.keras` to Keras 2 when it
is imported; setting TF_USE_LEGACY_KERAS before TensorFlow loads keeps every model on one Keras.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TextIO


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and absl chatter unless the user asked for --verbose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    warnings.filterwarnings("ignore", message=".*Statistics for quantized inputs were expected.*")


_SILENCE_LOCK = threading.Lock()
_silence = {"depth": 0, "saved": -1}


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Mute fd 2 while TensorFlow/LiteRT C++ code prints start-up and converter lines that bypass
    Python logging. Reference-counted, so overlapping uses from several threads nest correctly."""
    if os.environ.get("PMF_VERBOSE") == "1":
        yield
        return
    with _SILENCE_LOCK:
        if _silence["depth"] == 0:
            with contextlib.suppress(AttributeError, ValueError):  # no stderr, or a closed one swapped in by a test harness
                sys.stderr.flush()
            _silence["saved"] = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _silence["depth"] += 1
    try:
        yield
    finally:
        with _SILENCE_LOCK:
            _silence["depth"] -= 1
            if _silence["depth"] == 0:
                os.dup2(_silence["saved"], 2)
                os.close(_silence["saved"])


def print_past_silence(text: str, stream: TextIO) -> None:
    """Print `text` on `stream`. When `stream` is the process's stderr and another thread has fd 2 muted
    (`native_stderr_silenced`, e.g. a TFLite conversion), write it to the real stderr behind the mute:
    a progress line printed during another variant's conversion is not lost."""
    with _SILENCE_LOCK:
        if _silence["depth"] > 0 and _fileno(stream) == 2:
            stream.flush()
            os.write(_silence["saved"], (text + "\n").encode())
        else:
            print(text, file=stream, flush=True)


def _fileno(stream: TextIO) -> int:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):  # a StringIO or a closed stream: not fd 2
        return -1


_KERAS_IMPORT = threading.Lock()
_keras: list[ModuleType] = []  # the fully imported tf_keras, once one thread has finished importing it


def import_keras() -> ModuleType:
    """Return the tf_keras module with TensorFlow configured for this project.

    Thread-safe: while one thread (the start-up warm-up, flows.warmup) is importing it, `sys.modules`
    already holds the half-initialised module; another thread waits here for the whole of it instead
    of getting the half (`module 'tf_keras' has no attribute 'utils'`)."""
    if _keras:
        return _keras[0]
    with _KERAS_IMPORT:
        if not _keras:
            _keras.append(_import_keras())
    return _keras[0]


def _import_keras() -> ModuleType:
    quiet_tensorflow()
    with native_stderr_silenced():
        import tensorflow as tf
        import tf_keras

    tf.get_logger().setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl ships with TensorFlow; guard only for odd installs
        pass
    return tf_keras


def import_tf() -> ModuleType:
    import_keras()
    import tensorflow as tf

    return tf
