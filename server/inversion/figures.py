"""Picture grids and the similarity figure of the inversion attacks (PNG, written atomically).

matplotlib's object API with the Agg canvas, as :func:`common.results.plot_accuracy` uses, so
no global backend or pyplot state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray

from common.results import atomic_write

_MAX_SHOWN = 8  # images per attack in the grid; the summary scores all of them
_COLUMNS = 8


@dataclass(frozen=True)
class Reconstruction:
    """One attack's images and, in the same order, the true images they matched best."""

    title: str
    images: NDArray[np.float32]
    matches: NDArray[np.float32]


def _show(axes: Axes, image: NDArray[Any]) -> None:
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    axes.imshow(np.clip(pixels, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0)
    axes.set_xticks([])
    axes.set_yticks([])


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))


def save_update_grid(attacks: Sequence[Reconstruction], path: Path) -> None:
    """Reconstructions (upper row) over the true images they match best (lower row).

    Cells run left to right, ``_COLUMNS`` to a row pair, up to ``_MAX_SHOWN`` per attack, each
    titled with its attack (``r`` round, ``c`` client).
    """
    cells = [
        (attack.title, image, truth)
        for attack in attacks
        for image, truth in list(zip(attack.images, attack.matches, strict=True))[:_MAX_SHOWN]
    ]
    pairs = -(-len(cells) // _COLUMNS)
    columns = min(len(cells), _COLUMNS)
    figure = Figure(figsize=(1.1 * max(columns, 4) + 0.6, 2.4 * pairs + 0.4), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.subplots(2 * pairs, columns, squeeze=False)
    for axes in grid.ravel():
        axes.axis("off")
    for index, (title, image, truth) in enumerate(cells):
        row, column = divmod(index, _COLUMNS)
        _show(grid[2 * row, column], image)
        _show(grid[2 * row + 1, column], truth)
        grid[2 * row, column].set_title(title, fontsize=8)
    figure.suptitle("upper: reconstructed, lower: true", fontsize=9)
    _save(figure, path)


def save_class_figures(
    images: Sequence[NDArray[np.float32]],
    means: Sequence[NDArray[np.float32]],
    rows: Sequence[dict[str, Any]],
    run_dir: Path,
) -> None:
    """``inversion_classes.png`` (inversion over class mean) and ``inversion_similarity.png``."""
    figure = Figure(figsize=(1.2 * len(images) + 1.0, 3.0), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, len(images), squeeze=False)
    for label, (image, mean) in enumerate(zip(images, means, strict=True)):
        _show(grid[0, label], image)
        _show(grid[1, label], mean)
        grid[0, label].set_title(str(label))
    grid[0, 0].set_ylabel("MI-FACE")
    grid[1, 0].set_ylabel("class mean")
    _save(figure, run_dir / "inversion_classes.png")

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = np.asarray([r["class"] for r in rows])
    bars = (
        ("ssim_to_class_mean", "SSIM to its class mean"),
        ("ssim_to_other_means", "best SSIM to another class mean"),
        ("confidence", "model confidence"),
    )
    for offset, (key, legend) in zip((-0.27, 0.0, 0.27), bars, strict=True):
        axes.bar(labels + offset, [r[key] for r in rows], 0.27, label=legend)
    axes.set(xlabel="class", ylabel="value", ylim=(-0.2, 1.3), xticks=labels)
    axes.set_title("model inversion from the final model (MI-FACE)")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(loc="upper center", ncols=3, fontsize=7)
    _save(figure, run_dir / "inversion_similarity.png")
