"""Per-client accounting: tensorflow-privacy's cross-check numbers, monotonicity, skipped rounds."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.dp_config import DPConfig
from common.errors import ConfigError
from server.privacy_accounting import (
    ClientPrivacyLedger,
    central_epsilon,
    format_table,
    wrap_central_dp,
)

DELTA = 1e-5


def _record(ledger: ClientPrivacyLedger, pid: int, server_round: int, **overrides: float) -> None:
    # The 180-example client of the cross-check: b = 32, 1 epoch = ceil(180/32) = 6 Poisson steps.
    event: dict[str, float] = {
        "steps": 6,
        "epochs": 1,
        "sampling_rate": 32 / 180,
        "noise_multiplier": 1.1,
        "microbatch_size": 1,
    } | overrides
    ledger.record(pid, server_round=server_round, **event)  # type: ignore[arg-type]


def test_matches_tensorflow_privacy_statement_for_1437_examples() -> None:
    # compute_dp_sgd_privacy_statement(1437, 32, 10, 1.1, 1e-5, used_microbatching=False):
    # "once per epoch: 16.857", "Poisson sampling: 2.749" (450 = ceil(10 * 1437 / 32) steps).
    ledger = ClientPrivacyLedger()
    ledger.record(
        0,
        server_round=1,
        steps=450,
        epochs=10,
        sampling_rate=32 / 1437,
        noise_multiplier=1.1,
        microbatch_size=1,
    )
    assert ledger.epsilon(0, DELTA, method="poisson_rdp") == pytest.approx(2.749, abs=5e-3)
    assert ledger.epsilon(0, DELTA, method="shuffle") == pytest.approx(16.857, abs=5e-3)


def test_matches_cross_check_for_20_rounds_of_one_epoch() -> None:
    ledger = ClientPrivacyLedger()
    for server_round in range(1, 21):
        _record(ledger, 7, server_round)
    assert ledger.epsilon(7, DELTA, method="poisson_rdp") == pytest.approx(13.17, abs=5e-3)
    assert ledger.epsilon(7, DELTA, method="shuffle") == pytest.approx(26.50, abs=5e-3)


def test_microbatches_of_several_examples_halve_the_noise_multiplier() -> None:
    # tensorflow-privacy's used_microbatching: sigma 2.2 with microbatches == 1.1 without.
    halved, plain = ClientPrivacyLedger(), ClientPrivacyLedger()
    _record(halved, 0, 1, noise_multiplier=2.2, microbatch_size=4)
    _record(plain, 0, 1, noise_multiplier=1.1, microbatch_size=1)
    for method in ("poisson_rdp", "shuffle"):
        assert halved.epsilon(0, DELTA, method=method) == plain.epsilon(0, DELTA, method=method)


@settings(max_examples=15, deadline=None)
@given(participation=st.lists(st.booleans(), min_size=2, max_size=12))
def test_epsilon_grows_only_in_rounds_the_client_took_part_in(participation: list[bool]) -> None:
    ledger = ClientPrivacyLedger()
    previous = {"poisson_rdp": 0.0, "shuffle": 0.0}
    for server_round, took_part in enumerate(participation, start=1):
        if took_part:
            _record(ledger, 3, server_round)
        for method in ("poisson_rdp", "shuffle"):
            now = ledger.epsilon(3, DELTA, method=method)
            assert (now > previous[method]) if took_part else (now == previous[method])
            previous[method] = now
    assert len(ledger.events(3)) == sum(participation)


def test_summary_and_table_cover_honest_clients_only() -> None:
    ledger = ClientPrivacyLedger()
    for server_round in (1, 2):
        _record(ledger, 0, server_round)
    _record(ledger, 1, 2)
    one = ledger.epsilon(1, DELTA, method="poisson_rdp")
    two = ledger.epsilon(0, DELTA, method="poisson_rdp")
    summary = ledger.summary([0, 1, 2], delta=DELTA)  # client 2 never trained: epsilon 0
    assert summary["epsilon_poisson_rdp_max"] == two
    assert summary["epsilon_poisson_rdp_mean"] == pytest.approx((two + one + 0.0) / 3)
    assert ledger.summary([], delta=DELTA)["epsilon_shuffle_max"] == 0.0
    rows = ledger.table(delta=DELTA)
    assert [(r.partition_id, r.rounds, r.local_steps) for r in rows] == [(0, 2, 12), (1, 1, 6)]
    assert rows[1].epsilon_poisson_rdp == one
    text = format_table(rows, delta=DELTA)
    assert text.splitlines()[2].split() == [
        "0",
        "2",
        "12",
        f"{two:.3f}",
        f"{rows[0].epsilon_shuffle:.3f}",
    ]


def test_ledger_round_trips_through_json() -> None:
    ledger = ClientPrivacyLedger()
    _record(ledger, 4, 1)
    _record(ledger, 4, 3, steps=12, epochs=2)
    _record(ledger, 9, 2, microbatch_size=2)
    again = ClientPrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert again.to_dict() == ledger.to_dict()
    assert again.epsilon(4, DELTA, method="shuffle") == ledger.epsilon(4, DELTA, method="shuffle")


def test_no_noise_means_no_finite_epsilon_and_no_rounds_means_zero() -> None:
    ledger = ClientPrivacyLedger()
    assert ledger.epsilon(0, DELTA, method="poisson_rdp") == 0.0
    _record(ledger, 0, 1, noise_multiplier=0.0)
    assert math.isinf(ledger.epsilon(0, DELTA, method="poisson_rdp"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sampling_rate": 0.0}, r"^sampling_rate: got 0.0; must be in \(0, 1\]$"),
        ({"sampling_rate": 1.5}, r"^sampling_rate: got 1.5; must be in \(0, 1\]$"),
        ({"steps": -1}, r"^steps: got -1; must be >= 0$"),
        ({"microbatch_size": 0}, r"^microbatch_size: got 0; must be >= 1$"),
        ({"noise_multiplier": -0.5}, r"^noise_multiplier: got -0.5; must be >= 0$"),
    ],
)
def test_bad_events_raise_config_error(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _record(ClientPrivacyLedger(), 0, 1, **overrides)


def test_rounds_must_increase_and_methods_and_delta_are_checked() -> None:
    ledger = ClientPrivacyLedger()
    _record(ledger, 0, 2)
    with pytest.raises(
        ConfigError, match=r"^server_round: got 2 for partition 0; must be > its last"
    ):
        _record(ledger, 0, 2)
    with pytest.raises(ConfigError, match=r"^method: got 'pld'; allowed: poisson_rdp, shuffle$"):
        ledger.epsilon(0, DELTA, method="pld")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^dp.delta: got 0.0; must be in \(0, 1\)$"):
        ledger.epsilon(0, 0.0, method="shuffle")


def test_central_epsilon_is_client_level_poisson_composition_over_rounds() -> None:
    # Same events as the 20-round client: q = 32/180 per round, 6 x 20 = 120 Gaussian(1.1) events.
    assert central_epsilon(
        rounds=120, clients_per_round=32, num_clients=180, noise_multiplier=1.1, delta=DELTA
    ) == pytest.approx(13.17, abs=5e-3)
    assert (
        central_epsilon(
            rounds=0, clients_per_round=1, num_clients=10, noise_multiplier=1.0, delta=DELTA
        )
        == 0.0
    )
    with pytest.raises(ConfigError, match=r"^clients_per_round: got 11; must be in \[1, 10\]$"):
        central_epsilon(
            rounds=1, clients_per_round=11, num_clients=10, noise_multiplier=1.0, delta=DELTA
        )


def test_wrap_central_dp_configures_flowers_server_side_fixed_clipping() -> None:
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

    inner = FedAvg()
    config = DPConfig(enabled=True, mode="central", clipping_norm=2.5, central_noise_multiplier=0.8)
    wrapped = wrap_central_dp(inner, config, num_sampled_clients=4)
    assert isinstance(wrapped, DifferentialPrivacyServerSideFixedClipping)
    assert (wrapped.strategy, wrapped.clipping_norm, wrapped.noise_multiplier) == (inner, 2.5, 0.8)
    assert wrapped.num_sampled_clients == 4
    with pytest.raises(ConfigError, match=r"^dp.mode: got 'local' \(enabled=True\)"):
        wrap_central_dp(inner, DPConfig(enabled=True), num_sampled_clients=4)
