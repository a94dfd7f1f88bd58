"""Pictures: attention maps over images, and training curves.

The array work is pure functions (an alpha grid -> an upsampled heatmap); matplotlib is
used only in the functions that save a figure, which write their PNG atomically.
"""

import math

import numpy as np
from PIL import Image

from captioner import io


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
    plt.close(figure)


def _figure(panels, columns):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    return figure, axes.flat


def cell_box(cell, grid_shape, height, width):
    """(x, y, w, h) in image pixels of flat grid cell ``cell`` of an (H, W) grid."""
    rows, columns = grid_shape
    row, column = divmod(int(cell), columns)
    return column * width / columns, row * height / rows, width / columns, height / rows


def save_attention_figure(path, image, words, alphas, probabilities=None, chosen_cells=None,
                          columns=6):
    """One PNG: the image, then one panel per word with its attention map overlaid.

    Args:
        image: (h, w, 3) uint8, the original image.
        words: the caption's words; alphas: (n_words, H, W); probabilities: per word.
        chosen_cells: for hard attention, the flat cell each word looked at: it is outlined,
            with alpha drawn faintly beneath.
    """
    from matplotlib.patches import Rectangle
    height, width = image.shape[:2]
    figure, axes = _figure(len(words) + 1, min(columns, len(words) + 1))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=10)
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
        axis.set_title(title, fontsize=10)
    _save_figure(figure, path)


def save_training_curves(path, history):
    """Per epoch: the losses; validation CIDEr-D and BLEU-4; and, when the validation
    split has instances, object precision, recall and attention correctness."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [row["epoch"] for row in history]
    grounded = all("val_object_recall" in row for row in history)
    figure, axes = plt.subplots(1, 3 if grounded else 2, figsize=(15 if grounded else 10, 3.6))
    panels = [
        (axes[0], "loss", [("loss", "train loss"), ("val_loss", "validation loss")]),
        (axes[1], "validation score (greedy)", [("val_cider", "CIDEr-D"), ("val_bleu4", "BLEU-4")]),
    ]
    if grounded:
        panels.append((axes[2], "validation grounding", [
            ("val_object_precision", "object precision"), ("val_object_recall", "object recall"),
            ("val_attention_correctness", "attention correctness"),
            ("val_uniform_baseline", "uniform attention")]))
    for axis, label, curves in panels:
        for key, name in curves:
            if all(key in row for row in history):
                axis.plot(epochs, [row[key] for row in history], "o-", label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    _save_figure(figure, path)
