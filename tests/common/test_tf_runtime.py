"""The process-wide sizing of :mod:`common.tf_runtime`: numpy's and scipy's OpenBLAS pools get
the client's CPUs, as TensorFlow's pools do.

The adversary is the machine itself: OpenBLAS starts a thread per core and leaves it spinning
after every call, so a process given one core of two (a ``--jobs 2`` sweep's session) would
spend part of that core spinning.
"""

from __future__ import annotations

import os

import pytest

from tests.fresh_interpreter import python_output

BLAS_THREADS = (
    "from threadpoolctl import threadpool_info\n"
    "print(*sorted(f\"{i['prefix']}={i['num_threads']}\" for i in threadpool_info()"
    " if i['user_api'] == 'blas'))\n"
)


def _python(program: str) -> list[str]:
    """``program``'s stdout lines, in a fresh interpreter with OpenBLAS's default sizing."""
    unsized = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in unsized}
    return python_output(program, env=env).splitlines()


MULTICORE = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="one core: OpenBLAS starts one thread anyway"
)


@MULTICORE
def test_size_blas_sizes_the_blas_loaded_before_and_the_blas_loaded_after() -> None:
    program = (
        "import numpy\n"
        f"{BLAS_THREADS}"  # numpy's OpenBLAS at its default: one thread per core
        "from common.tf_runtime import size_blas\n"
        "size_blas(1)\n"
        "import scipy.linalg\n"  # scipy's own OpenBLAS, loaded after the call
        f"{BLAS_THREADS}"
    )
    before, after = _python(program)
    name, threads = before.split("=")
    assert name == "libopenblas" and int(threads) > 1  # a thread per core (up to its build's cap)
    assert after == "libopenblas=1 libscipy_openblas=1"


@MULTICORE
def test_configuring_a_clients_tensorflow_sizes_its_blas_too() -> None:
    program = (
        "from common.tf_runtime import configure_tensorflow\n"
        "configure_tensorflow(1)\n"
        "import scipy.linalg\n"
        f"{BLAS_THREADS}"
    )
    assert _python(program) == ["libopenblas=1 libscipy_openblas=1"]
