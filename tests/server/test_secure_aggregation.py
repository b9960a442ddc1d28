"""SecAgg+ end to end in one process: Flower's real workflow and mod, fedshield's apps, no Ray.

:class:`DirectGrid` is a transport, not a stand-in for any part under test: it hands each
message to the real ``ClientApp`` of its destination node (each node keeps its own ``Context``,
where ``secaggplus_mod`` keeps its keys and shares between stages) and returns the replies, as
Flower's in-memory grid does without the threads. The same seeded federation (3 clients,
2 rounds, no DP: training is deterministic) runs under SecAgg+ and through fedshield's normal
strategy; the masked sum unmasks to FedAvg's weighted mean, so the global models differ only by
SecAgg+'s quantization (2 * 8 / 2^22 ~ 4e-6 per weight).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.app import app as plain_app
from clients.secagg import app as secagg_app
from common.results import read_jsonl
from scenarios.loader import load_scenario
from server.app import RunOutcome, serve
from server.secure_aggregation import serve_secure
from tests.direct_grid import DirectGrid


def _run(tmp_path: Path, secure: bool) -> list[dict[str, float]]:
    scenario = load_scenario(
        "secure_aggregation",
        [
            f"secure_aggregation.enabled={str(secure).lower()}",
            "data.num_clients=3",
            "rounds=2",
            f'output="{tmp_path}"',
        ],
    )
    run_dir = tmp_path / str(secure)
    run_dir.mkdir()
    run = serve_secure if secure else serve
    grid = DirectGrid(secagg_app if secure else plain_app, 3)
    summary = run(grid, scenario, run_dir, RunOutcome())
    assert summary["status"] == "finished"
    return read_jsonl(run_dir / "metrics.jsonl")


def test_secagg_gives_fedavgs_model(tmp_path: Path) -> None:
    plain, secure = _run(tmp_path, False), _run(tmp_path, True)
    assert [r["round"] for r in secure] == [0, 1, 2]
    for a, b in zip(plain, secure, strict=True):
        assert b["accuracy"] == a["accuracy"]
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
    assert secure[-1]["accuracy"] > secure[0]["accuracy"] + 0.2  # it did learn
    assert secure[1]["num_accepted"] == 3 and secure[1]["sampled"] == [0, 1, 2]
