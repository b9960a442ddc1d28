"""Group processes forked from the sweep (:mod:`fedshield.sweep.forked`).

Every program runs in a fresh interpreter: the test process has run TensorFlow ops, and a fork
from it is exactly what the module refuses. The real group forked and running real cells is
``tests/e2e/test_process_backend.py`` (a ``--jobs 2`` sweep against one session).
"""

from __future__ import annotations

import tempfile

import pytest

from tests.fresh_interpreter import python_output


def _python(program: str) -> list[str]:
    """``program``'s stdout words, run in a fresh interpreter."""
    return python_output(program).split()


def test_forking_is_safe_after_the_imports_and_refused_after_an_op_or_with_a_thread() -> None:
    program = (
        "import threading\n"
        "from fedshield.runner import import_apps\n"
        "from fedshield.sweep.forked import can_fork\n"
        "import_apps(False); print(can_fork())\n"  # TensorFlow, Flower and the apps: no op run
        "import tensorflow as tf\n"
        "event = threading.Event()\n"
        "thread = threading.Thread(target=event.wait); thread.start()\n"
        "print(can_fork()); event.set(); thread.join(); print(can_fork())\n"
        "tf.constant(1.0) + 1.0; print(can_fork())\n"
    )
    assert _python(program) == ["True", "False", "True", "False"]


def test_each_forked_child_sees_the_end_of_its_own_work_however_many_came_after() -> None:
    # Two children forked one after the other: the second must not hold the first's pipe ends,
    # or the first would wait for its work forever once the sweep closes its end. Closed without
    # work, a child ends at once with 0; the second, dismissed while waiting, with 128 + SIGTERM.
    program = (
        "import time\n"
        "from fedshield.sweep.concurrent import prewarmed\n"
        "with prewarmed(2, False) as warm:\n"
        "    first, second = warm\n"
        "    print(*(type(s.process).__name__ for s in warm))\n"
        "    first.process.stdin.close()\n"
        "    deadline = time.monotonic() + 60\n"
        "    while first.process.poll() is None and time.monotonic() < deadline:\n"
        "        time.sleep(0.05)\n"
        "    print(first.process.returncode, second.process.poll())\n"
        "print(second.process.returncode)\n"  # dismissed as the block ended
    )
    assert _python(program) == ["ForkedProcess", "ForkedProcess", "0", "None", "143"]


def test_the_sweeps_objects_are_frozen_before_it_forks() -> None:
    # A child's full collections must neither traverse the modules and the dataset it inherits
    # nor write their headers (copying the sweep's pages into the child).
    program = (
        "import gc\n"
        "from fedshield.sweep.concurrent import prewarmed\n"
        "print(gc.get_freeze_count())\n"
        "with prewarmed(1, False) as warm:\n"
        "    print(type(warm[0].process).__name__, gc.get_freeze_count() > 100_000)\n"
    )
    assert _python(program) == ["0", "ForkedProcess", "True"]


def _started_after(setup: str) -> list[str]:
    """The kind of process :func:`prewarmed` starts after ``setup`` ran in a fresh interpreter."""
    program = (
        f"{setup}\n"
        "from fedshield.sweep.concurrent import prewarmed\n"
        "with prewarmed(1, False) as warm:\n"
        "    print(type(warm[0].process).__name__)\n"
    )
    return _python(program)


def test_after_a_tensorflow_op_the_sweep_starts_fresh_interpreters() -> None:
    assert _started_after("import tensorflow as tf\ntf.constant(1.0) + 1.0") == ["Popen"]


@pytest.mark.e2e
def test_while_connected_to_ray_the_sweep_starts_fresh_interpreters() -> None:
    # A child forked with a live Ray connection would wait forever in its own ray.init (gRPC).
    # A short temporary directory: Ray's socket paths must fit in 107 characters.
    with tempfile.TemporaryDirectory(prefix="fsh-") as temp:
        options = f"address='local', num_cpus=1, include_dashboard=False, _temp_dir={temp!r}"
        assert _started_after(f"import ray\nray.init({options})") == ["Popen"]
