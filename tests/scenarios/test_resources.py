"""The memory guard: a scenario whose concurrent client actors cannot fit is refused before Ray.

The adversary is the researcher's own sweep: ``simulation.num_cpus = 0.01`` on a 64-core box
starts 6,400 TensorFlow actors at once and the kernel's OOM killer ends the run (or the machine)
hours later. The guard says so in one line, with the setting that fits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from scenarios.loader import read_scenario
from scenarios.resources import (
    GIB,
    MIB,
    TF_RUNTIME,
    MemoryEstimate,
    available_memory,
    check_fits,
    concurrent_actors,
    estimate_memory,
    num_params,
)
from tests.cli_helpers import run_cli
from tests.fresh_interpreter import python_output

MLP_PARAMS = 4810  # the mlp on digits: 64 x 64 + 64 + 64 x 10 + 10
DIGITS_BYTES = 1437 * 64 * 4 + 360 * 64 * 4 + (1437 + 360) * 8


def test_the_estimate_of_quickstart_counts_runtime_model_copies_and_data() -> None:
    s = read_scenario("quickstart")
    estimate = estimate_memory(s, MLP_PARAMS, DIGITS_BYTES)
    assert estimate.actor == TF_RUNTIME + 4 * MLP_PARAMS * 5 + DIGITS_BYTES
    assert estimate.server == TF_RUNTIME + 500 * MIB + DIGITS_BYTES + 4 * MLP_PARAMS * (3 * 10 + 4)
    adam = estimate_memory(read_scenario("quickstart", ['train.optimizer="adam"']), 1000, 0)
    assert adam.actor - TF_RUNTIME == 4 * 1000 * 6
    local_dp = estimate_memory(read_scenario("dp_local"), 1000, 0)
    batch = read_scenario("dp_local").train.batch_size
    assert local_dp.actor - TF_RUNTIME == 4 * 1000 * (5 + batch)  # one gradient per example


def test_the_mlp_on_digits_has_the_parameters_counted_above() -> None:
    assert num_params("mlp", (8, 8, 1), 10) == MLP_PARAMS


def test_flowers_pool_size_is_cpus_over_the_clients_share() -> None:
    assert concurrent_actors(read_scenario("quickstart", ["simulation.num_cpus=0.25"]), 16) == 64
    assert concurrent_actors(read_scenario("quickstart", ["simulation.num_cpus=4"]), 2) == 1


def test_too_many_actors_are_refused_with_a_num_cpus_that_fits() -> None:
    s = read_scenario("quickstart", ["simulation.num_cpus=0.1"])
    estimate = MemoryEstimate(actor=1 * GIB, server=2 * GIB)
    with pytest.raises(ConfigError) as caught:
        check_fits(s, estimate, cpus=16, available=10 * GIB)
    message = str(caught.value)
    assert message == (
        "simulation.num_cpus: got 0.1; 160 concurrent client actors (16 CPUs / 0.1) x 1.00 GiB "
        "+ the server 2.00 GiB need about 162.0 GiB, but this host has 10.0 GiB available: set "
        "simulation.num_cpus to at least 2.0 (8 concurrent actors)"
    )
    fitting = read_scenario("quickstart", ["simulation.num_cpus=2.0"])
    check_fits(fitting, estimate, cpus=16, available=10 * GIB)  # 8 x 1 + 2 = 10 GiB: fits
    with pytest.raises(ConfigError, match="not even one client fits"):
        check_fits(s, estimate, cpus=16, available=2 * GIB + 100)
    check_fits(s, estimate, cpus=16, available=None)  # a kernel that does not say: no refusal


def test_available_memory_reads_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  24731184 kB\nMemAvailable:   22522628 kB\n")
    assert available_memory(meminfo) == 22522628 * 1024
    assert available_memory(tmp_path / "absent") is None
    real = available_memory()
    assert real is not None and real > 0


def test_validate_and_run_refuse_a_scenario_sized_past_this_machine(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 0.001 CPU per client: thousands of actors x 0.68 GiB on any host.
    for command in ("validate", "run"):
        code, out, err = run_cli(
            capsys,
            command,
            "quickstart",
            "--set",
            "simulation.num_cpus=0.001",
            "--set",
            f'output="{tmp_path}"',
        )
        assert code == 2 and out == []
        assert len(err) == 1 and err[0].startswith("error: simulation.num_cpus: got 0.001; ")
        assert "GiB available: set simulation.num_cpus to at least" in err[0]
    assert list(tmp_path.iterdir()) == []  # no run directory: refused before Ray started


def test_validating_a_scenario_starts_no_tensorflow_runtime() -> None:
    # The parameter count needs shapes only; a sweep forks its sessions only while TF's runtime
    # has not started (fedshield.sweep.forked), so validation must not start it.
    program = (
        "from fedshield.sweep.forked import tensorflow_started\n"
        "from scenarios.loader import read_scenario\n"
        "from scenarios.preflight import check_environment\n"
        "from scenarios.resources import num_params\n"
        "check_environment(read_scenario('quickstart'))\n"
        "print(num_params('mlp', (8, 8, 1), 10), tensorflow_started())\n"
        "import tensorflow as tf; tf.constant(1.0) + 1.0\n"
        "print(tensorflow_started())\n"  # the probe does see a started runtime
    )
    assert python_output(program).split() == [str(MLP_PARAMS), "False", "True"]
