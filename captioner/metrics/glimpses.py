"""Glimpses on target: how often the Recurrent Attention Model looks at the object.

For every image with the object's box, the share of glimpse centres inside that box, per
glimpse. The chance level is what a location drawn uniformly over the image would score:
the mean share of the image the boxes cover. A policy that has learned where to look
scores well above it from the second glimpse on (the first is the centre at inference).
"""

import numpy as np

from captioner.geometry import location_to_pixels


def glimpses_on_target(locations, boxes, height, width):
    """Share of glimpse centres inside their image's box, per glimpse, and chance.

    Args:
        locations: (N, T, 2) glimpse centres, (row, column) in [-1, 1] (the RAM's
            ``locations`` output; -1 is the top/left edge, 1 the bottom/right one, as
            ``captioner.geometry.location_to_pixels`` maps them).
        boxes: (N, 4) the object's pixels as (top, left, bottom, right), bottom and right
            exclusive: rows top..bottom - 1, columns left..right - 1.
        height, width: the images' size in pixels.

    Returns:
        (hits (T,), chance): hits[t] is the share of images whose glimpse t fell inside
        the box; chance is the mean box area over the image area.
    """
    locations = np.asarray(locations, np.float64)
    boxes = np.asarray(boxes, np.float64)
    if locations.ndim != 3 or locations.shape[-1] != 2 or boxes.shape != (len(locations), 4):
        raise ValueError(f"Expected locations (N, T, 2) and boxes (N, 4); got "
                         f"{locations.shape} and {boxes.shape}")
    pixels = location_to_pixels(locations, height, width)  # (N, T, 2)
    rows, cols = pixels[..., 0], pixels[..., 1]
    top, left, bottom, right = (boxes[:, i:i + 1] for i in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    chance = float(np.mean((bottom - top) * (right - left)) / (height * width))
    return inside.mean(axis=0), chance
