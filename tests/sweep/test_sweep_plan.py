"""Every cell validated before any runs; warm-session groups; how many run at once."""

from __future__ import annotations

from pathlib import Path

from fedshield.ray_cluster import actor_capacity
from fedshield.sweep.grid import load_grid
from fedshield.sweep.plan import concurrent_groups, plan_grid, pool_share

GRID = """\
base = "quickstart"
[overrides]
rounds = 1
"attack.type" = "sign_flip"
"attack.malicious" = 1
[sweep]
"defense.params" = [{num_byzantine = 1}, {num_byzantine = 2}]
seed = [1, 2]
[[sweep.cases]]
"defense.aggregator" = "krum"
[[sweep.cases]]
"defense.aggregator" = "bulyan"
"""


def _plan(tmp_path: Path, text: str = GRID):  # type: ignore[no-untyped-def]
    path = tmp_path / "g.toml"
    path.write_text(text)
    return plan_grid(load_grid(str(path)), tmp_path / "out")


def test_invalid_cells_are_found_before_anything_runs(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    # Bulyan needs n >= 4f+3 updates: 10 sampled clients hold f = 1 (7) but not f = 2 (11);
    # Krum needs n >= 2f+3 and holds both. Only the bulyan cells with f = 2 are refused.
    invalid = plan.invalid
    assert [c.cell.index for c in invalid] == [5, 7]
    assert all(c.cell.coordinates["defense.aggregator"] == "bulyan" for c in invalid)
    assert all(c.cell.coordinates["defense.params"] == {"num_byzantine": 2} for c in invalid)
    assert all(c.error and "needs at least 11 updates" in c.error for c in invalid)
    label = invalid[0].label(len(plan.cells))
    assert label == "cell 6/8 (defense.params={num_byzantine=2} seed=1 defense.aggregator=bulyan)"
    assert all(c.group == -1 for c in invalid)
    valid = [c for c in plan.cells if c.error is None]
    assert len(valid) == 6 and all(c.scenario is not None for c in valid)
    assert all(c.scenario.output == str(tmp_path / "out") for c in valid if c.scenario)


def test_cells_needing_the_same_clients_share_one_session(tmp_path: Path) -> None:
    # Seeds, rules and attacks do not change what the clients are: one session for all.
    one = GRID.replace("{num_byzantine = 2}", "{num_byzantine = 0}")
    plan = _plan(tmp_path, one)
    assert len(plan.groups) == 1 and len(plan.groups[0]) == 8
    # The number of clients and their resources do.
    text = one.replace("seed = [1, 2]", 'seed = [1]\n"data.num_clients" = [10, 12]')
    plan = _plan(tmp_path, text)
    assert [[c.cell.index for c in g] for g in plan.groups] == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert [c.group for c in plan.cells] == [0, 0, 1, 1, 0, 0, 1, 1]
    text = one.replace("seed = [1, 2]", 'seed = [1]\n"simulation.num_cpus" = [1, 2]')
    assert len(_plan(tmp_path, text).groups) == 2
    # So does where the ClientApp runs (a Ray actor pool, or the driver itself).
    text = one.replace("seed = [1, 2]", 'seed = [1]\n"simulation.backend" = ["ray", "process"]')
    assert len(_plan(tmp_path, text).groups) == 2


def test_signed_broadcasts_with_seed_keys_split_sessions_by_seed(tmp_path: Path) -> None:
    # A client's trust anchor is fixed when its session starts; with seed-derived keys it is
    # the seed's key, so two seeds cannot share clients (with integrity off they can, above).
    text = GRID.replace("{num_byzantine = 2}", "{num_byzantine = 0}")
    text = text.replace("rounds = 1\n", 'rounds = 1\n"integrity.enabled" = true\n')
    plan = _plan(tmp_path, text)
    assert [[c.cell.coordinates["seed"] for c in g] for g in plan.groups] == [[1] * 4, [2] * 4]


def test_a_cluster_cell_may_ask_for_gpus_this_host_lacks(tmp_path: Path) -> None:
    # Without a cluster the clients run here, and no host has 64 GPUs; a cluster's are on its
    # nodes (its start-up check finds whether one fits).
    text = GRID.replace("rounds = 1\n", 'rounds = 1\n"simulation.num_gpus" = 64\n')
    (tmp_path / "g.toml").write_text(text)
    grid = load_grid(str(tmp_path / "g.toml"))
    here = plan_grid(grid, tmp_path / "out")
    assert len(here.invalid) == 8  # bulyan's f = 2 cells, and the other six for the GPU
    assert (
        sum("simulation.num_gpus: got 64.0; this host has" in (c.error or "") for c in here.cells)
        == 6
    )
    on_cluster = plan_grid(grid, tmp_path / "out", local_gpus=False)
    assert len(on_cluster.invalid) == 2  # only bulyan's f = 2 cells, as without GPUs


def test_groups_run_one_at_a_time_on_the_private_ray() -> None:
    assert concurrent_groups(None, 5) == 1
    # On a cluster: as many as hold one actor each, at most the number of groups.
    assert concurrent_groups(4, 10) == 4
    assert concurrent_groups(64, 3) == 3
    assert concurrent_groups(0, 3) == 1  # no actor fits: one group, whose engine says so


def test_concurrent_sessions_share_the_actors_and_fit_together() -> None:
    # 2 nodes of 3 CPUs with 1-CPU clients: 6 actors. Flower would give each session all 6.
    nodes = [{"Alive": True, "Resources": {"CPU": 3.0, "memory": 8e9}}] * 2
    slots = actor_capacity(nodes, {"num_cpus": 1.0, "num_gpus": 0.0})[1]
    assert slots == 6
    for num_groups, at_once, share in ((2, 2, 3), (4, 4, 1), (9, 6, 1), (1, 1, 6)):
        assert concurrent_groups(slots, num_groups) == at_once
        assert pool_share(slots, at_once) == share
        assert at_once * share <= slots
    # A GPU per client bounds it below the CPUs: 16 CPUs, 1 GPU hold one such client at a time.
    gpu_node = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 1.0}}]
    slots = actor_capacity(gpu_node, {"num_cpus": 1.0, "num_gpus": 1.0})[1]
    assert (concurrent_groups(slots, 3), pool_share(slots, 1)) == (1, 1)
