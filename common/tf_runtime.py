"""Process-wide TensorFlow (and BLAS) settings, applied once per process before the first TF op.

Ray actors inherit the environment of the driver, so quieting is done by environment variables
before Ray starts (:func:`quiet_environment`); thread pools and determinism must be set inside
each worker process before TF initialises its runtime (:func:`configure_tensorflow`).
"""

from __future__ import annotations

import os
import warnings
from contextlib import suppress

_configured = False


def quiet_environment(verbose: bool) -> None:
    """Silence TF's C++ logs, Flower telemetry and Ray's noise unless ``verbose``."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:
        # Third-party deprecation chatter (tensorflow-probability, Ray) would bury the progress
        # lines; the variable also reaches Ray's worker processes.
        os.environ["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Several client actors may share a GPU (num_gpus < 1); see configure_tensorflow.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def configure_tensorflow(num_threads: int) -> None:
    """Size TF's thread pools (and numpy's BLAS: :func:`size_blas`) to the client's CPUs, let
    GPU memory grow, and make its kernels deterministic.

    Memory growth: by default TF maps almost all of a GPU's memory on its first op, so a second
    client actor given a fraction of the same GPU (``simulation.num_gpus < 1``) fails to
    allocate; with growth each takes what it uses. (Flower 1.23's ``actor.tensorflow`` switch
    that should do this is dead code: ``RayBackend`` reads it from an empty dict.)
    Must run before the process's first TF op; later calls are no-ops (TF refuses to resize).
    """
    global _configured
    if _configured:
        return
    import tensorflow as tf

    threads = max(1, num_threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # The runtime was already initialised (e.g. in a test process): keep TF's sizing.
        pass
    size_blas(threads)
    grow_gpu_memory()
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel("ERROR")
    _configured = True


def size_blas(num_threads: int) -> None:
    """Size the OpenBLAS pools of numpy and scipy to ``num_threads``, as TF's pools are sized.

    OpenBLAS starts one worker thread per core and, after every call, leaves them spinning on
    ``sched_yield`` until the next. Where a process gets one core of several (a client actor,
    or a process-backend session beside others: ``fedshield sweep --jobs N``), those threads
    take CPU from the work: measured with ``perf``, each 6-cell quickstart session of a
    ``--jobs 2`` sweep spent 1.2 to 1.6 s of its 6.5 s of CPU in ``blas_thread_server``.
    Libraries already loaded are resized through threadpoolctl; the environment variable covers
    those loaded later (OpenBLAS reads it when it loads).
    """
    from threadpoolctl import threadpool_limits

    os.environ["OPENBLAS_NUM_THREADS"] = str(num_threads)
    threadpool_limits(num_threads, user_api="blas")


def grow_gpu_memory() -> list[str]:
    """Turn on memory growth for every GPU TF sees; returns their names (none on a CPU host)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # RuntimeError: already initialised; TF_FORCE_GPU_ALLOW_GROWTH (set by
        # quiet_environment, also in the workers' runtime env) applied the same setting then.
        with suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return [gpu.name for gpu in gpus]
