"""Partitioners: how a training set's examples are dealt out to the federation's clients.

Each scheme assigns every example an *owner* (a client id) with a seeded numpy ``Generator``;
:func:`partition` turns the owner vector into the sorted train indices of each client. Every
scheme here is disjoint and covers all ``N`` examples (no remainder is dropped).

Why not flwr-datasets 0.6.0's partitioners (a test-only dependency here):

* they need Hugging Face ``datasets`` and ``pyarrow`` at run time, and Ray imports ``pyarrow``
  in every actor call whenever it is installed: pyarrow 26 refuses NumPy 1.26 (pinned by
  TensorFlow 2.15), so the runtime stays free of both and the tests pin ``pyarrow<26``;
* ``IidPartitioner`` cuts *contiguous* blocks (``Dataset.shard(contiguous=True)``) and relies on
  ``FederatedDataset`` having shuffled the data first; on a label-ordered array it is not IID;
* ``ShardPartitioner(num_shards_per_partition=s)`` drops the last ``N mod (K s)`` examples.

The schemes below follow the same papers in a few vectorised array operations (no per-example
Python loop). ``dirichlet`` and ``shard`` make the same random draws in the same order as
flwr-datasets' ``DirichletPartitioner(self_balancing=False, shuffle=False)`` and
``ShardPartitioner(num_shards_per_partition=s, shuffle=False)`` given the same seed (``shard``
when ``K s`` divides ``N``); ``tests/data/test_data_partitioner_parity.py`` checks this against
their real code, index for index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from common.errors import ConfigError
from common.registry import NoParams, Params, Registry
from common.seeding import derive_rng

_P_contra = TypeVar("_P_contra", contravariant=True)

#: Field path of the partitioner's parameters in a scenario file, used in error messages.
PARAMS_FIELD = "data.partition.params"
#: Draws of the Dirichlet scheme before giving up (flwr-datasets' first draw + 10 retries).
DIRICHLET_MAX_DRAWS = 11


class OwnerFunction(Protocol[_P_contra]):
    """A scheme: ``owner[i]`` in ``[0, num_clients)`` is the client of example ``i``."""

    def __call__(
        self,
        labels: NDArray[np.int64],
        *,
        num_clients: int,
        params: _P_contra,
        rng: np.random.Generator,
    ) -> NDArray[np.int64]: ...


PARTITIONERS: Registry[OwnerFunction[Any]] = Registry("partitioner")


def _balanced_owners(count: int, num_groups: int) -> NDArray[np.int64]:
    # Group sizes of ``np.array_split``: the first ``count mod num_groups`` groups get one more.
    sizes = np.full(num_groups, count // num_groups, dtype=np.int64)
    sizes[: count % num_groups] += 1
    return np.repeat(np.arange(num_groups, dtype=np.int64), sizes)


@PARTITIONERS.register("iid", NoParams)
def iid_owners(
    labels: NDArray[np.int64], *, num_clients: int, params: NoParams, rng: np.random.Generator
) -> NDArray[np.int64]:
    """IID: a uniform random permutation cut into ``K`` near-equal parts (sizes differ by <= 1).

    ``pi ~ Uniform(S_N)``; client ``k`` receives ``pi[j]`` for ``j`` in the ``k``-th block of
    ``np.array_split(range(N), K)``, so ``|D_k|`` is ``ceil(N/K)`` or ``floor(N/K)``
    (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
    Data", AISTATS 2017, the IID setting).
    """
    owner = np.empty(labels.shape[0], dtype=np.int64)
    owner[rng.permutation(labels.shape[0])] = _balanced_owners(labels.shape[0], num_clients)
    return owner


class DirichletParams(Params):
    """Parameters of the Dirichlet label-skew scheme."""

    alpha: float = Field(gt=0.0, allow_inf_nan=False, description="concentration of Dir(alpha)")
    min_partition_size: int = Field(
        10, ge=0, description="resample until every client holds at least this many examples"
    )


@PARTITIONERS.register("dirichlet", DirichletParams)
def dirichlet_owners(
    labels: NDArray[np.int64],
    *,
    num_clients: int,
    params: DirichletParams,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Label skew: each class's examples are split over clients by ``p_c ~ Dir(alpha 1_K)``.

    For every class ``c`` (ascending), with ``n_c`` examples in index order, client ``k`` gets
    positions ``[floor(n_c P_{c,k-1}), floor(n_c P_{c,k}))`` where ``P_{c,k} = sum_{j<=k} p_{c,j}``
    (the ``np.split`` at ``cumsum(p_c) * n_c`` of flwr-datasets' ``DirichletPartitioner`` with
    ``self_balancing=False``; Yurochkin et al., "Bayesian Nonparametric Federated Learning of
    Neural Networks", ICML 2019; Hsu et al. 2019). Small ``alpha`` concentrates each class on a
    few clients; ``alpha -> inf`` tends to IID. If some client ends below
    ``min_partition_size``, all ``p_c`` are redrawn (up to :data:`DIRICHLET_MAX_DRAWS` draws,
    as flwr-datasets does); the bound ``K * min_partition_size <= N`` is checked first.
    """
    num_examples = labels.shape[0]
    if num_clients * params.min_partition_size > num_examples:
        raise ConfigError(
            f"{PARAMS_FIELD}.min_partition_size: got {params.min_partition_size}; "
            f"num_clients x min_partition_size must be at most the {num_examples} training examples"
        )
    order = np.argsort(labels, kind="stable")  # class-major, index order inside each class
    classes, class_starts, class_counts = np.unique(
        labels[order], return_index=True, return_counts=True
    )
    position = np.arange(num_examples)
    class_of_position = np.repeat(np.arange(classes.size), class_counts)
    for _ in range(DIRICHLET_MAX_DRAWS):
        # One Dir(alpha 1_K) row per class, drawn in ascending class order like flwr-datasets.
        proportions = rng.dirichlet(np.full(num_clients, params.alpha), size=classes.size)
        inner_cuts = (np.cumsum(proportions, axis=1) * class_counts[:, None]).astype(np.int64)
        cuts = (inner_cuts[:, :-1] + class_starts[:, None]).ravel()
        # Every cut of an earlier class lies at or before a position, none of a later class does,
        # so subtracting (K-1) cuts per earlier class leaves the client within the class.
        earlier_cuts = (num_clients - 1) * class_of_position
        client = np.searchsorted(cuts, position, side="right") - earlier_cuts
        owner = np.empty(num_examples, dtype=np.int64)
        owner[order] = client
        if np.bincount(owner, minlength=num_clients).min() >= params.min_partition_size:
            return owner
    raise ConfigError(
        f"{PARAMS_FIELD}.min_partition_size: got {params.min_partition_size}; not reached in "
        f"{DIRICHLET_MAX_DRAWS} Dirichlet draws with alpha={params.alpha} and {num_clients} "
        "clients; lower it or raise alpha"
    )


class ShardParams(Params):
    """Parameters of the pathological non-IID shard scheme."""

    shards_per_client: int = Field(2, ge=1, description="shards dealt to each client (s)")


@PARTITIONERS.register("shard", ShardParams)
def shard_owners(
    labels: NDArray[np.int64],
    *,
    num_clients: int,
    params: ShardParams,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Pathological non-IID: sort by label, cut ``K s`` shards, deal ``s`` random shards each.

    McMahan et al. 2017: MNIST sorted by digit, 200 shards of 300, two per client for 100
    clients. Shards are ``np.array_split`` of the stably label-sorted indices into ``K s`` runs
    (sizes ``floor(N/(K s))`` or one more, so no example is dropped; when ``K s`` divides ``N``
    this is flwr-datasets' ``ShardPartitioner``). With ``pi ~ Uniform(S_{K s})`` client ``k``
    gets shards ``pi[k s : (k+1) s]``. A shard spans at most ``ceil(N/(K s))`` consecutive
    sorted labels, so when every class has at least that many examples a shard touches at most
    two classes and a client sees at most ``2 s`` labels.
    """
    num_shards = num_clients * params.shards_per_client
    if num_shards > labels.shape[0]:
        raise ConfigError(
            f"{PARAMS_FIELD}.shards_per_client: got {params.shards_per_client}; num_clients x "
            f"shards_per_client must be at most the {labels.shape[0]} training examples"
        )
    shard_owner = np.empty(num_shards, dtype=np.int64)
    shard_owner[rng.permutation(num_shards)] = np.arange(num_shards) // params.shards_per_client
    owner = np.empty(labels.shape[0], dtype=np.int64)
    owner[np.argsort(labels, kind="stable")] = shard_owner[
        _balanced_owners(labels.shape[0], num_shards)
    ]
    return owner


@PARTITIONERS.register("natural", NoParams, keys="natural_ids")
def natural_owners(
    labels: NDArray[np.int64], *, num_clients: int, params: NoParams, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Natural: client k holds every example of the dataset's k-th natural id (a writer).

    The ``keys`` tag makes the caller pass the dataset's ``natural_ids`` (flwr-datasets'
    ``NaturalIdPartitioner`` partition ids, :mod:`common.data.hub`) as ``labels``: the parts
    are the data's own, so the federation has exactly as many clients as natural ids.
    """
    count = int(labels.max()) + 1
    if num_clients != count:
        raise ConfigError(
            f"data.num_clients: got {num_clients}; the natural partition has {count} "
            "partitions (data.params.num_partitions keeps fewer)"
        )
    return labels.copy()


def _check_inputs(labels: NDArray[np.int64], num_clients: int) -> None:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(
            f"labels: got shape {labels.shape} dtype {labels.dtype}; need 1-D integers"
        )
    if labels.size and labels.min() < 0:
        raise ConfigError(f"labels: got minimum {labels.min()}; class labels must be >= 0")
    if not 1 <= num_clients <= labels.shape[0]:
        raise ConfigError(
            f"data.num_clients: got {num_clients}; must be between 1 and the "
            f"{labels.shape[0]} training examples"
        )


def partition(
    labels: NDArray[np.int64],
    *,
    num_clients: int,
    scheme: str,
    params: Mapping[str, Any],
    seed: int,
) -> list[NDArray[np.int64]]:
    """Sorted train indices of each of ``num_clients`` clients under the registered ``scheme``.

    The parts are disjoint and together cover ``range(len(labels))``. The generator is
    ``derive_rng(seed, "partition", scheme)``, so the same seed gives the same parts on every
    machine and the partition draws never share a stream with training or attacks. ``labels``
    is not modified.
    """
    checked = PARTITIONERS.parse_params(scheme, params, where=PARAMS_FIELD)
    _check_inputs(labels, num_clients)
    owner = PARTITIONERS[scheme].target(
        labels, num_clients=num_clients, params=checked, rng=derive_rng(seed, "partition", scheme)
    )
    # A stable sort by owner keeps indices ascending inside each client.
    grouped = np.argsort(owner, kind="stable").astype(np.int64)
    bounds = np.cumsum(np.bincount(owner, minlength=num_clients))[:-1]
    return np.split(grouped, bounds)


def partition_sizes(parts: Sequence[NDArray[np.int64]]) -> list[int]:
    """Number of examples of each client."""
    return [int(part.shape[0]) for part in parts]


def partition_hash(parts: Sequence[NDArray[np.int64]]) -> str:
    """SHA-256 hex digest of the parts: per client, its size then its indices, int64 little-endian.

    The size prefix makes the boundaries part of the digest (``[0 1][2]`` != ``[0][1 2]``).
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(np.int64(part.shape[0]).astype("<i8").tobytes())
        digest.update(np.ascontiguousarray(part, dtype="<i8").tobytes())
    return digest.hexdigest()


def label_histogram(
    labels: NDArray[np.int64], parts: Sequence[NDArray[np.int64]], num_classes: int
) -> NDArray[np.int64]:
    """``(num_clients, num_classes)`` counts: entry ``[k, c]`` is ``|{i in D_k : y_i = c}|``."""
    if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got [{labels.min()}, {labels.max()}]"
        )
    sizes = partition_sizes(parts)
    client = np.repeat(np.arange(len(parts), dtype=np.int64), sizes)
    members = np.concatenate(list(parts)) if parts else np.empty(0, dtype=np.int64)
    flat = np.bincount(client * num_classes + labels[members], minlength=len(parts) * num_classes)
    return flat.reshape(len(parts), num_classes).astype(np.int64)
