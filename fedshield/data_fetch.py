"""``fedshield data fetch NAME``: download a dataset's files into the cache, checksums verified.

Every file a dataset declares (``DatasetSource.files``: relative path -> URL) is fetched with
Keras's own downloader, ``tf.keras.utils.get_file``, and checked against the checksum below
(SHA-256 from Keras's own loaders for MNIST and CIFAR-10; Fashion-MNIST's official MD5s from
Zalando's README, which Keras does not check). A file is downloaded into a temporary directory
beside its destination and moved into place only after its checksum matched, so the cache never
holds a partial or corrupted file; a file already there with the right checksum is kept.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from common.data.datasets import DATASETS, KERAS_CACHE
from common.errors import ConfigError, FedshieldError

CHECKSUMS: Mapping[str, str] = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "fashion-mnist/train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "fashion-mnist/train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "fashion-mnist/t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    "cifar-10-batches-py.tar.gz": (
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    ),
}
"""Relative path under the cache -> its checksum (64 hex digits: SHA-256, 32: MD5)."""


def download(url: str, destination: Path, file_hash: str) -> Path:
    """Fetch ``url`` to ``destination`` with Keras's downloader unless it is already there.

    Raises :class:`FedshieldError` in one line when the download fails (no network, a bad
    URL) or the file's checksum differs from ``file_hash``; nothing is left at ``destination``.
    """
    import tensorflow as tf

    if destination.is_file() and _matches(destination, file_hash):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".fetch-") as scratch:
        try:
            fetched = tf.keras.utils.get_file(
                destination.name,
                origin=url,
                file_hash=file_hash,
                cache_dir=scratch,
                cache_subdir=".",
            )
        except ValueError:  # Keras: "Incomplete or corrupted file detected"
            raise FedshieldError(
                f"data fetch: {url} does not have the expected checksum {file_hash}; "
                f"nothing was written to {destination}"
            ) from None
        except Exception as err:  # Keras wraps URLError/HTTPError in a bare Exception
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise FedshieldError(
                f"data fetch: could not download {url} ({reason}); check the network or "
                "pass --mirror with a directory or URL that holds the file"
            ) from None
        os.replace(fetched, destination)
    return destination


def _matches(path: Path, file_hash: str) -> bool:
    from keras.src.utils.data_utils import validate_file

    return bool(validate_file(str(path), file_hash))


def fetch_dataset(
    name: str, *, data_dir: str | None = None, mirror: str | None = None
) -> list[Path]:
    """Download every file of dataset ``name`` into ``data_dir`` (default: Keras's cache).

    ``mirror``: a base URL or a local directory to take the files from instead of their origin
    (by file name). Returns the paths, in the dataset's declared order.
    """
    source = DATASETS[name].target  # ConfigError naming the allowed datasets
    if not source.files:
        raise ConfigError(f"data fetch: dataset {name!r} has no files to download")
    directory = Path(data_dir).expanduser() if data_dir else KERAS_CACHE.expanduser()
    paths = []
    for relative, url in source.files.items():
        if mirror is not None:
            base = mirror if "://" in mirror else Path(mirror).resolve().as_uri()
            url = f"{base.rstrip('/')}/{Path(urlparse(url).path).name}"
        paths.append(download(url, directory / relative, CHECKSUMS[relative]))
    return paths
