"""The Recurrent Attention Model's sensor: a retina and a glimpse network (Mnih et al. 2014).

Locations are (row, column) in [-1, 1]^2, mapped to pixels by
``captioner.geometry.location_to_pixels``.
"""

import keras
from keras import ops

from captioner.geometry import location_to_pixels


def bilinear_sample(images, rows, cols):
    """images (batch, H, W, C) read at the grid rows x cols of each image: rows (batch, P)
    and cols (batch, Q) in pixel-index coordinates (pixel i at i). Bilinear; outside the
    image reads 0. Returns (batch, P, Q, C).

    Written with gathers rather than ``keras.ops.image.map_coordinates``, whose TensorFlow
    version needs a static batch size (fit() traces with an unknown one)."""
    batch = ops.shape(images)[0]
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    points = rows.shape[1] * cols.shape[1]
    flat = ops.reshape(images, (batch, height * width, channels))
    top, left = ops.floor(rows), ops.floor(cols)
    down, right = rows - top, cols - left  # weights of the lower row and the right column
    result = 0.0
    for row, row_weight in ((top, 1.0 - down), (top + 1.0, down)):
        row_inside = ops.cast((row >= 0) & (row <= height - 1), images.dtype)
        row_index = ops.cast(ops.clip(row, 0, height - 1), "int32")
        for col, col_weight in ((left, 1.0 - right), (left + 1.0, right)):
            col_inside = ops.cast((col >= 0) & (col <= width - 1), images.dtype)
            col_index = ops.cast(ops.clip(col, 0, width - 1), "int32")
            index = ops.reshape(row_index[:, :, None] * width + col_index[:, None, :],
                                (batch, points, 1))
            values = ops.take_along_axis(
                flat, ops.broadcast_to(index, (batch, points, channels)), axis=1)
            weight = (row_weight * row_inside)[:, :, None] * (col_weight * col_inside)[:, None, :]
            result = result + ops.reshape(values, (batch, rows.shape[1], cols.shape[1],
                                                   channels)) * weight[..., None]
    return result


def glimpse_patches(images, locations, size, scales):
    """The retina: ``scales`` square patches around each location, side ``size * 2**i``
    for scale i, each averaged down to ``size`` x ``size``.

    Args:
        images: (batch, H, W, C).
        locations: (batch, 2), (row, column) in [-1, 1].
        size: g, the side of every returned patch.
        scales: k, the number of patches; patch i covers ``g * 2**i`` pixels a side.

    Returns:
        (batch, k, g, g, C). Pixels outside the image read as 0. A patch whose centre falls
        on pixel corners (an integer coordinate, g even) is exactly the image's slice
        ``[r - g/2 : r + g/2, c - g/2 : c + g/2]``; elsewhere it is interpolated
        bilinearly, so it moves smoothly with the location.
    """
    images = ops.cast(ops.convert_to_tensor(images), "float32")
    batch = ops.shape(images)[0]
    centres = location_to_pixels(ops.cast(ops.convert_to_tensor(locations), "float32"),
                                 images.shape[1], images.shape[2])  # (batch, 2)
    patches = []
    for scale in range(scales):
        side = size * 2 ** scale
        offsets = ops.cast(ops.arange(side), "float32") - side / 2.0
        # pixel k of the patch covers [centre - side/2 + k, ... + 1): index centre - side/2 + k
        patch = bilinear_sample(images, centres[:, 0:1] + offsets[None],
                                centres[:, 1:2] + offsets[None])
        factor = 2 ** scale
        if factor > 1:  # average factor x factor blocks: the patch at g x g resolution
            patch = ops.mean(ops.reshape(patch, (batch, size, factor, size, factor,
                                                 images.shape[3])), axis=(2, 4))
        patches.append(patch)
    return ops.stack(patches, axis=1)


@keras.saving.register_keras_serializable(package="captioner")
class GlimpseNetwork(keras.layers.Layer):
    """g_t = ReLU(W_g ReLU(W_what rho(x, l)) + W_l ReLU(W_where l)): what the retina sees at
    l and where that is, in one vector (Mnih et al. 2014, Fig. 1B).

    Args:
        size, scales: the retina's patch side g and number of scales k.
        hidden: width of the "what" and "where" layers.
        units: width of the glimpse vector g_t.

    Call arguments:
        images (batch, H, W, C), locations (batch, 2) in [-1, 1].

    Returns:
        (g_t (batch, units), patches (batch, k, g, g, C)).
    """

    def __init__(self, size=8, scales=3, hidden=128, units=256, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("size", size), ("scales", scales), ("hidden", hidden),
                            ("units", units)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        self.size, self.scales, self.hidden, self.units = size, scales, hidden, units
        self.what = keras.layers.Dense(hidden, activation="relu", name="what")
        self.where = keras.layers.Dense(hidden, activation="relu", name="where")
        self.what_out = keras.layers.Dense(units, name="what_out")
        self.where_out = keras.layers.Dense(units, use_bias=False, name="where_out")

    def build(self, images_shape, locations_shape):
        batch = images_shape[0]
        self.what.build((batch, self.scales * self.size * self.size * images_shape[-1]))
        self.where.build((batch, 2))
        self.what_out.build((batch, self.hidden))
        self.where_out.build((batch, self.hidden))

    def call(self, images, locations):
        patches = glimpse_patches(images, locations, self.size, self.scales)
        flat = ops.reshape(patches, (ops.shape(patches)[0], -1))
        glimpse = ops.relu(self.what_out(self.what(flat)) + self.where_out(self.where(locations)))
        return glimpse, patches

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, scales=self.scales, hidden=self.hidden, units=self.units)
        return config
