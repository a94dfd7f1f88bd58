"""Where a glimpse location falls in an image.

Locations are (row, column) in [-1, 1]^2: (-1, -1) is the image's top-left corner, (1, 1)
its bottom-right one and (0, 0) its centre, each axis scaled by its own side, so non-square
images need no special case. Pixel i covers [i, i + 1) along its axis. The retina, the
renderer, the glimpse metrics and the command line all map locations with this function.
"""

import numpy as np


def location_to_pixels(locations, height, width):
    """(..., 2) locations in [-1, 1] -> (..., 2) continuous (row, column) pixel coordinates.

    Plain arithmetic, so it takes NumPy arrays and float32 tensors of any backend alike.
    """
    return (locations + 1.0) / 2.0 * np.array([height, width], np.float32)
