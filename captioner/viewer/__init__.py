"""The attention viewer: pages a browser opens from the file system.

``caption.py IMAGES --html DIR`` and ``caption.py --coco DIR --html DIR`` write, through
:class:`captioner.viewer.pages.ViewerWriter`::

    DIR/index.html          the page: its script and style inlined, nothing fetched
    DIR/data/manifest.js    what every item is (name, CIDEr-D, hallucination), the summary
    DIR/data/page_NNNN.js   the items themselves, a page at a time: words, probabilities,
                            attention maps (uint8, per word), references, boxes
    DIR/images/NNNNNN.jpg   each image, at most 384 pixels on a side

Data travel as script files (``<script src>`` works from ``file://``, ``fetch`` does
not), and the page loads only the data pages it shows, so a 5,000-image report opens as
fast as a 50-image one. Everything is drawn in the browser: the map of the word under the
pointer (or the one clicked), smoothly upsampled over the image.
"""
