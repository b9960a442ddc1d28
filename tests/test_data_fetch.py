"""``fedshield data fetch``: offline failure, checksum refusal and the verified path, all local."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from common.errors import ConfigError, FedshieldError
from fedshield.cli import main
from fedshield.data_fetch import CHECKSUMS, download, fetch_dataset


def test_a_file_with_the_right_checksum_is_fetched_into_place(tmp_path: Path) -> None:
    origin = tmp_path / "mirror" / "blob.bin"
    origin.parent.mkdir()
    origin.write_bytes(b"fedshield" * 1000)
    sha = hashlib.sha256(origin.read_bytes()).hexdigest()
    target = tmp_path / "cache" / "sub" / "blob.bin"
    assert download(origin.as_uri(), target, sha) == target
    assert target.read_bytes() == origin.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["blob.bin"]  # no scratch left
    origin.unlink()  # already there and verified: no download is attempted
    assert download(origin.as_uri(), target, sha) == target


def test_a_file_with_another_checksum_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # A mirror (or a man in the middle) serving a tampered mnist.npz.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "mnist.npz").write_bytes(b"not the real mnist")
    cache = tmp_path / "cache"
    with pytest.raises(FedshieldError, match="expected checksum " + CHECKSUMS["mnist.npz"]):
        fetch_dataset("mnist", data_dir=str(cache), mirror=str(mirror))
    assert list(cache.iterdir()) == []


def test_offline_is_one_error_line_naming_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"  # an unreachable origin: what no network looks like
    code = main(
        ["data", "fetch", "cifar10", "--data-dir", str(tmp_path / "c"), "--mirror", str(missing)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: data fetch: could not download ")
    assert (
        "cifar-10-python.tar.gz" in err
        and not (tmp_path / "c" / "cifar-10-batches-py.tar.gz").exists()
    )


def test_unknown_and_fileless_datasets_are_refused() -> None:
    with pytest.raises(ConfigError, match="digits"):
        fetch_dataset("imagenet")
    with pytest.raises(ConfigError, match="no files to download"):
        fetch_dataset("digits")
