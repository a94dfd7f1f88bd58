import numpy as np
from PIL import Image

from captioner.render import cell_box, save_attention_figure, upsample_attention


def test_upsampled_attention_peaks_where_alpha_does():
    alpha = np.zeros((4, 4), np.float32)
    alpha[1, 3] = 1.0
    heat = upsample_attention(alpha, 64, 128)
    assert heat.shape == (64, 128) and heat.max() == 1.0
    row, column = np.unravel_index(heat.argmax(), heat.shape)
    assert 16 <= row < 32 and 96 <= column < 128  # inside cell (1, 3)


def test_cell_box_maps_flat_cells_onto_the_image():
    assert cell_box(0, (2, 3), 100, 150) == (0.0, 0.0, 50.0, 50.0)
    assert cell_box(5, (2, 3), 100, 150) == (100.0, 50.0, 50.0, 50.0)


def test_attention_figure_with_chosen_cells(tmp_path):
    image = np.full((48, 64, 3), 90, np.uint8)
    alphas = np.random.default_rng(0).dirichlet(np.ones(12), size=3).reshape(3, 3, 4)
    for chosen in (None, [0, 5, 11]):
        path = tmp_path / f"figure_{chosen is None}.png"
        save_attention_figure(str(path), image, ["a", "red", "circle"], alphas,
                              [0.9, 0.8, 0.7], chosen_cells=chosen)
        with Image.open(path) as png:
            assert png.format == "PNG" and png.width > 200
