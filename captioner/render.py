"""Pictures: attention maps over images, and training curves.

The array work is pure functions (an alpha grid -> an upsampled heatmap); matplotlib is
used only in the functions that save a figure, which write their PNG atomically.
"""

import math

import matplotlib
import numpy as np
from PIL import Image

from captioner import io
from captioner.geometry import location_to_pixels

matplotlib.use("Agg")  # files only: no display is needed, or used


def upsample_attention(alpha_grid, height, width):
    """(H, W) attention weights -> (height, width) map in [0, 1], smoothly interpolated.

    Each grid cell is the centre of its patch of the image; bicubic interpolation of the
    weights (Pillow, float mode) spreads it smoothly, and the result is scaled so its
    maximum is 1.
    """
    grid = np.asarray(alpha_grid, dtype=np.float32)
    heat = np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC))
    heat = np.clip(heat, 0.0, None)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def _save_figure(figure, path):
    import matplotlib.pyplot as plt
    with io.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)  # a figure pyplot made; one made without it is only dropped


def _figure(panels, columns):
    """A figure of ``panels`` axes, made without pyplot, so that threads (a server's) can
    each draw their own."""
    from matplotlib.figure import Figure
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(2.2 * columns, 2.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    return figure, axes.flat


def cell_box(cell, grid_shape, height, width):
    """(x, y, w, h) in image pixels of flat grid cell ``cell`` of an (H, W) grid."""
    rows, columns = grid_shape
    row, column = divmod(int(cell), columns)
    return column * width / columns, row * height / rows, width / columns, height / rows


def save_attention_figure(path, image, words, alphas, probabilities=None, chosen_cells=None,
                          columns=6, warning=None):
    """Writes :func:`attention_figure` as a PNG file at ``path``."""
    _save_figure(attention_figure(image, words, alphas, probabilities, chosen_cells, columns,
                                  warning), path)


def attention_png(image, words, alphas, probabilities=None, chosen_cells=None, columns=6,
                  warning=None):
    """:func:`attention_figure` as PNG bytes (a server's answer: nothing on disk)."""
    import io as bytes_io
    buffer = bytes_io.BytesIO()
    attention_figure(image, words, alphas, probabilities, chosen_cells, columns,
                     warning).savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def attention_figure(image, words, alphas, probabilities=None, chosen_cells=None, columns=6,
                     warning=None):
    """One figure: the image, then one panel per word with its attention map overlaid.

    Args:
        image: (h, w, 3) uint8, the original image.
        words: the caption's words; alphas: (n_words, H, W); probabilities: per word.
        chosen_cells: for hard attention, the flat cell each word looked at: it is outlined,
            with alpha drawn faintly beneath.
        warning: a line over the figure, in red (e.g. that the image is out of domain).
    """
    from matplotlib.patches import Rectangle
    height, width = image.shape[:2]
    figure, axes = _figure(len(words) + 1, min(columns, len(words) + 1))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=10)
    if warning:
        figure.suptitle(warning, color="red", fontsize=11, parse_math=False)
    for index, word in enumerate(words):
        axis = axes[index + 1]
        axis.imshow(image)
        axis.imshow(upsample_attention(alphas[index], height, width), cmap="jet",
                    alpha=0.55 if chosen_cells is None else 0.25, vmin=0.0, vmax=1.0)
        if chosen_cells is not None:
            x, y, w, h = cell_box(chosen_cells[index], alphas[index].shape, height, width)
            axis.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="white",
                                     linewidth=2.5))
            axis.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red",
                                     linewidth=1.2))
        title = word if probabilities is None else f"{word} ({probabilities[index]:.2f})"
        axis.set_title(title, fontsize=10, parse_math=False)  # words are text, not TeX
    return figure


def save_curves(path, history, panels):
    """Training curves: one panel per (title, [(key, label), ...]) of ``panels``, each
    curve a metric of ``history`` (one dict per epoch) against the epoch. A curve is drawn
    only where every epoch has it, and a panel only where one of its curves is."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [row["epoch"] for row in history]
    shown = [(title, [(key, label) for key, label in curves
                      if all(key in row for row in history)]) for title, curves in panels]
    shown = [(title, curves) for title, curves in shown if curves]
    figure, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.6), squeeze=False)
    for axis, (title, curves) in zip(axes[0], shown):
        for key, label in curves:
            axis.plot(epochs, [row[key] for row in history], "o-", label=label)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(title, parse_math=False)
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    _save_figure(figure, path)


def glimpse_squares(location, height, width, patch, scales):
    """The retina's squares around a location (row, col in [-1, 1]): per scale, the
    (top, left, side) in pixels, smallest first (as ``captioner.layers.glimpse``)."""
    row, col = location_to_pixels(np.asarray(location, np.float64), height, width)
    return [(row - patch * 2 ** i / 2.0, col - patch * 2 ** i / 2.0, patch * 2 ** i)
            for i in range(scales)]


def save_glimpse_figure(path, image, locations, patches, title=""):
    """Where a RAM looked: the image with each glimpse's nested squares, numbered in order
    and joined by its path, and beneath it the patches the retina returned (a column per
    glimpse, a row per scale, each shown at the retina's g x g resolution).

    image (H, W, C) in [0, 1]; locations (N, 2) in [-1, 1]; patches (N, k, g, g, C).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    image, patches = np.asarray(image), np.asarray(patches)
    glimpses, scales, patch = patches.shape[0], patches.shape[1], patches.shape[2]
    height, width = image.shape[:2]
    gray = image.shape[-1] == 1
    shown = image[..., 0] if gray else image
    colours = plt.get_cmap("autumn")(np.linspace(0, 0.85, max(glimpses, 2)))
    columns = max(glimpses, 2)
    figure = plt.figure(figsize=(1.3 * columns,
                                 1.3 * columns * height / width + 1.3 * scales + 0.6))
    grid = figure.add_gridspec(2, 1, height_ratios=[columns * height / width, scales], hspace=0.15)
    axis = figure.add_subplot(grid[0])
    axis.imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
    centres = []
    for t, location in enumerate(np.asarray(locations)):
        for top, left, side in glimpse_squares(location, height, width, patch, scales):
            axis.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False,
                                     edgecolor=colours[t], linewidth=1.5))
        row, col = location_to_pixels(location, height, width)
        centres.append((col - 0.5, row - 0.5))
        axis.text(col - 0.5, row - 0.5, str(t + 1), color="black", fontsize=9, ha="center",
                  va="center", fontweight="bold",
                  bbox=dict(boxstyle="circle,pad=0.15", facecolor=colours[t], edgecolor="none"))
    if len(centres) > 1:
        xs, ys = zip(*centres)
        axis.plot(xs, ys, color="cyan", linewidth=1, alpha=0.8)
    axis.set_xlim(-0.5, width - 0.5)
    axis.set_ylim(height - 0.5, -0.5)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=11, parse_math=False)  # a class label is text, not TeX
    strip = grid[1].subgridspec(scales, columns, wspace=0.08, hspace=0.08)
    for t in range(glimpses):
        for scale in range(scales):
            cell = figure.add_subplot(strip[scale, t])
            piece = patches[t, scale]
            cell.imshow(piece[..., 0] if gray else np.clip(piece, 0, 1),
                        cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
            cell.set_xticks([])
            cell.set_yticks([])
            for spine in cell.spines.values():
                spine.set_edgecolor(colours[t])
                spine.set_linewidth(2)
            if scale == 0:
                cell.set_title(str(t + 1), fontsize=9)
            if t == 0:
                cell.set_ylabel(f"{patch * 2 ** scale}px", fontsize=8)
    _save_figure(figure, path)
