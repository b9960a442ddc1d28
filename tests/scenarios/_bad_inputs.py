"""Every bad input of issue 15 and the one line ``fedshield validate`` answers it with.

``tests/scenarios/test_bad_inputs.py`` runs each case in process; ``python -m
tests.scenarios._bad_inputs`` runs each through the real ``fedshield validate`` command and prints
the table of ``docs/reliability.md`` (a test checks that the two agree). ``{tmp}`` stands for the
workspace that :func:`make_workspace` fills; the table shows it as ``$TMP``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.crypto.signing import KeyPair

NAME_300 = "a" * 300
MISSING_KEYS = (
    "it must hold server_0000.key/.pub and client_NNNN.key/.pub for every client 0 to 9, "
    "private keys readable by their owner only"
)


@dataclass(frozen=True)
class BadInput:
    """One row: what the user did, the ``validate`` arguments, the exact ``stderr`` line."""

    case: str
    argv: tuple[str, ...]
    line: str


def _q(*overrides: str) -> tuple[str, ...]:
    """``quickstart`` with each ``--set`` override."""
    return ("quickstart", *(arg for item in overrides for arg in ("--set", item)))


_DIRICHLET = ('data.partition.scheme="dirichlet"', "data.partition.params.alpha=1e-4")
_EMPTY = (
    "error: data.partition.params: got {'alpha': 0.0001, 'min_partition_size': 0}; the "
    "'dirichlet' scheme leaves 5 of 10 clients with no training example (seed 42): every client "
    "needs at least one; change the scheme's params or lower data.num_clients"
)
_KEYS = ("integrity.enabled=true",)

CASES: tuple[BadInput, ...] = (
    BadInput(
        "a directory as the scenario path",
        ("{tmp}/adir",),
        "error: scenario: got '{tmp}/adir'; a directory, expected a TOML file",
    ),
    BadInput(
        "a binary scenario file",
        ("{tmp}/binary.toml",),
        "error: scenario: got '{tmp}/binary.toml'; not a UTF-8 text file (byte 2), expected TOML",
    ),
    BadInput(
        "`rounds = true`",
        _q("rounds=true"),
        "error: rounds: got True; must be a number, not a boolean",
    ),
    BadInput(
        "`clients_per_round = true`",
        _q("clients_per_round=true"),
        "error: clients_per_round: got True; must be a number, not a boolean",
    ),
    BadInput(
        "`train.learning_rate = inf`",
        _q("train.learning_rate=inf"),
        "error: train.learning_rate: got inf; Input should be a finite number",
    ),
    BadInput(
        "`train.learning_rate = nan`",
        _q("train.learning_rate=nan"),
        "error: train.learning_rate: got nan; Input should be a finite number",
    ),
    BadInput(
        "`model.l2 = inf`",
        _q("model.l2=inf"),
        "error: model.l2: got inf; Input should be a finite number",
    ),
    BadInput(
        "`simulation.round_timeout = inf`",
        _q("simulation.round_timeout=inf"),
        "error: simulation.round_timeout: got inf; Input should be a finite number",
    ),
    BadInput(
        "`simulation.num_cpus = inf`",
        _q("simulation.num_cpus=inf"),
        "error: simulation.num_cpus: got inf; Input should be a finite number",
    ),
    BadInput(
        '`simulation.backend = "thread"`',
        _q('simulation.backend="thread"'),
        "error: simulation.backend: got 'thread'; Input should be 'ray' or 'process'",
    ),
    BadInput(
        "`data.num_clients = 1500` on digits (1,437 training images)",
        _q("data.num_clients=1500"),
        "error: data.num_clients: got 1500; must be between 1 and the 1437 training examples",
    ),
    BadInput(
        "`data.num_clients = 2000` on digits",
        _q("data.num_clients=2000"),
        "error: data.num_clients: got 2000; must be between 1 and the 1437 training examples",
    ),
    BadInput(
        "Dirichlet `alpha = 1e-4`, `min_partition_size = 0`: empty clients",
        _q(*_DIRICHLET, "data.partition.params.min_partition_size=0"),
        _EMPTY,
    ),
    BadInput(
        "the same with DP-SGD (`dp.enabled = true`)",
        _q(*_DIRICHLET, "data.partition.params.min_partition_size=0", "dp.enabled=true"),
        _EMPTY,
    ),
    BadInput(
        "Dirichlet `alpha = 1e-4` with the default `min_partition_size = 10`",
        _q(*_DIRICHLET),
        "error: data.partition.params.min_partition_size: got 10; not reached in 11 Dirichlet "
        "draws with alpha=0.0001 and 10 clients; lower it or raise alpha",
    ),
    BadInput(
        "`mnist` without `mnist.npz`",
        _q('data.dataset="mnist"', 'data.data_dir="{tmp}/nodata"'),
        "error: dataset 'mnist': missing mnist.npz under {tmp}/nodata; download "
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz to those paths "
        "(tf.keras.datasets.mnist.load_data() caches them in ~/.keras/datasets) or set "
        "data.data_dir to a directory that holds them",
    ),
    BadInput(
        "`mnist.npz` that is not an npz archive",
        _q('data.dataset="mnist"', 'data.data_dir="{tmp}/baddata"'),
        "error: dataset 'mnist': cannot read {tmp}/baddata/mnist.npz: Cannot load file "
        "containing pickled data when allow_pickle=False",
    ),
    BadInput(
        "`integrity.keys_dir` that does not exist",
        _q(*_KEYS, 'integrity.keys_dir="{tmp}/nokeys"'),
        "error: integrity.keys_dir: got '{tmp}/nokeys'; {tmp}/nokeys/server_0000.key: no such "
        f"key file: {MISSING_KEYS}",
    ),
    BadInput(
        "`integrity.keys_dir` without `client_0003.pub`",
        _q(*_KEYS, 'integrity.keys_dir="{tmp}/keys"'),
        "error: integrity.keys_dir: got '{tmp}/keys'; {tmp}/keys/client_0003.pub: no such key "
        f"file: {MISSING_KEYS}",
    ),
    BadInput(
        "`integrity.keys_dir` with a `client_0005.key` that is not a key",
        _q(*_KEYS, 'integrity.keys_dir="{tmp}/badkeys"'),
        "error: integrity.keys_dir: got '{tmp}/badkeys'; {tmp}/badkeys/client_0005.key: not a PEM "
        f"private key: {MISSING_KEYS}",
    ),
    BadInput(
        "`output` is a file",
        _q('output="{tmp}/afile"'),
        "error: output: got '{tmp}/afile'; is a file, not a directory",
    ),
    BadInput(
        "`output` under a file",
        _q('output="{tmp}/afile/runs"'),
        "error: output: got '{tmp}/afile/runs'; is under '{tmp}/afile', a file, not a directory",
    ),
    BadInput(
        "`output` under `/proc`",
        _q('output="/proc/runs"'),
        "error: output: got '/proc/runs'; cannot create a directory in '/proc' (No such file or "
        "directory): choose a writable directory",
    ),
    BadInput(
        "a 300-character `name`",
        _q(f'name="{NAME_300}"'),
        "error: name: got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... (302 characters); String "
        "should have at most 200 characters",
    ),
    BadInput(
        "`simulation.num_gpus = 1` on a host without a GPU",
        _q("simulation.num_gpus=1"),
        "error: simulation.num_gpus: got 1.0; this host has 0 GPU(s) that TensorFlow can see: "
        "set it to at most 0",
    ),
    BadInput(
        "label_flip `target = 50` on digits (10 classes)",
        _q(
            'attack.type="label_flip"',
            "attack.malicious=1",
            'attack.params.mode="all_to_one"',
            "attack.params.target=50",
        ),
        "error: attack.params.target: got 50; must be a class of digits (0 to 9)",
    ),
    BadInput(
        "backdoor `target = 50` on digits",
        _q('attack.type="backdoor"', "attack.malicious=1", "attack.params.target=50"),
        "error: attack.params.target: got 50; must be a class of digits (0 to 9)",
    ),
    BadInput(
        "IBA (its generator takes 28x28 images) on 8x8 digits",
        _q('attack.type="iba"', "attack.malicious=1"),
        "error: data.dataset: got 'digits' (8x8x1 images); attack 'iba' takes 28x28x1 images "
        "only: use a dataset of that shape (mnist, fashion_mnist, synthetic_mnist)",
    ),
)


def make_workspace(tmp: Path) -> None:
    """The files and directories the cases name, under ``tmp``."""
    (tmp / "adir").mkdir()
    (tmp / "binary.toml").write_bytes(b"\x00\x01\xff\xfe")
    (tmp / "afile").write_text("not a directory\n", encoding="utf-8")
    (tmp / "nodata").mkdir()
    (tmp / "baddata").mkdir()
    (tmp / "baddata" / "mnist.npz").write_bytes(b"not a zip archive")
    for folder in ("keys", "badkeys"):
        KeyPair.generate("server").save(tmp / folder)
        for partition in range(10):
            KeyPair.generate("client", partition).save(tmp / folder)
    (tmp / "keys" / "client_0003.pub").unlink()
    (tmp / "badkeys" / "client_0005.key").write_text("-----BEGIN nothing-----\n", "utf-8")


def expand(text: str, tmp: Path) -> str:
    """``text`` with the workspace placeholder filled in."""
    return text.replace("{tmp}", str(tmp))


def render(rows: list[tuple[str, int, str]]) -> str:
    """Markdown table of ``(case, exit code, stderr line)`` rows, the workspace shown as $TMP."""
    lines = ["| Bad input | `fedshield validate`: exit code and stderr |", "|---|---|"]
    for case, code, line in rows:
        text = line.replace("{tmp}", "$TMP").replace("|", "\\|")
        lines.append(f"| {case} | {code}: `{text}` |")
    return "\n".join(lines) + "\n"


def expected_table() -> str:
    """The table the cases promise (what ``docs/reliability.md`` must hold)."""
    return render([(case.case, 2, case.line) for case in CASES])


def measured_table() -> str:
    """The same table from real ``fedshield validate`` runs, one process per case."""
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name).resolve()
        make_workspace(tmp)
        for case in CASES:
            done = subprocess.run(
                [sys.executable, "-m", "fedshield.cli", "validate"]
                + [expand(arg, tmp) for arg in case.argv],
                capture_output=True,
                text=True,
                check=False,
            )
            rows.append(
                (case.case, done.returncode, done.stderr.strip().replace(str(tmp), "{tmp}"))
            )
    return render(rows)


if __name__ == "__main__":
    sys.stdout.write(measured_table())
