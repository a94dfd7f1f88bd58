"""CNN encoders that turn images into a spatial feature grid (batch, H, W, D).

``small`` is a CNN that trains from scratch: three stride-2 stages of two 3x3 convolutions
with batch normalisation, so an S-pixel image gives an (S/8, S/8) grid of ``4 * width``
features. The others are keras.applications backbones without their classifier; the grid
is their last convolutional feature map.
"""

import os

import keras
from keras import ops

from captioner.data.images import scale_pixels
from captioner.errors import ModelError

_APPLICATIONS = {
    "mobilenet_v2": "MobileNetV2",
    "resnet50": "ResNet50",
    "inception_v3": "InceptionV3",
    "efficientnet_b0": "EfficientNetB0",
}


def imagenet_file(backbone, image_size):
    """The file keras.applications reads ``backbone``'s ImageNet weights from (without the
    classifier), in ``imagenet_folder()``: it downloads it there once; offline, put it there
    (ResNet50's, InceptionV3's and EfficientNetB0's are checked against Keras' hash, so only
    the published file is taken)."""
    if backbone == "mobilenet_v2":  # one file per input side Keras publishes, else 224's
        rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    return {"resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "inception_v3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "efficientnet_b0": "efficientnetb0_notop.h5"}[backbone]


def imagenet_folder():
    """Where keras.applications keeps the weights it downloads: ``$KERAS_HOME/models``
    (by default ``~/.keras/models``)."""
    return os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")),
                        "models")


def _small_cnn(image_size, width, name):
    layers = [keras.Input((image_size, image_size, 3))]
    for stage, channels in enumerate((width, 2 * width, 4 * width)):
        for repeat in range(2):
            layers += [
                keras.layers.Conv2D(channels, 3, strides=2 if repeat == 0 else 1, padding="same",
                                    use_bias=False, name=f"conv{stage + 1}_{repeat + 1}"),
                keras.layers.BatchNormalization(momentum=0.9, name=f"bn{stage + 1}_{repeat + 1}"),
                keras.layers.ReLU(name=f"relu{stage + 1}_{repeat + 1}"),
            ]
    return keras.Sequential(layers, name=name)


def build_backbone(backbone, image_size, width=32, weights=None):
    """A Keras model mapping (batch, S, S, 3) images to (batch, H, W, D) features.

    ``weights`` is None (random), ``"imagenet"`` (keras.applications downloads them), or a
    path to a weights file for that backbone.
    """
    if backbone == "small":
        model = _small_cnn(image_size, width, name="backbone")
        if weights not in (None, "none", "imagenet"):
            _load_weights_file(model, weights)
        elif weights == "imagenet":
            raise ModelError("The small backbone trains from scratch: it has no ImageNet "
                             "weights. Use --weights none.")
        return model
    constructor = getattr(keras.applications, _APPLICATIONS[backbone])
    arguments = dict(include_top=False, input_shape=(image_size, image_size, 3))
    if weights == "imagenet":
        try:
            model = constructor(weights="imagenet", **arguments)
        except Exception as error:  # get_file raises a bare Exception on a failed fetch
            where = os.path.join(imagenet_folder(), imagenet_file(backbone, image_size))
            raise ModelError(f"Could not get the ImageNet weights of {backbone} ({error}). "
                             f"Offline, copy Keras' file to {where}, or use --weights PATH "
                             "(a weights file of this backbone) or --weights none") from None
    else:
        model = constructor(weights=None, **arguments)
        if weights not in (None, "none"):
            _load_weights_file(model, weights)
    return keras.Model(model.inputs, model.outputs, name="backbone")


def _load_weights_file(model, path):
    if not os.path.isfile(path):
        raise ModelError(f"Weights file not found: {path}")
    try:
        model.load_weights(path, skip_mismatch=False)
    except Exception as error:
        raise ModelError(f"Cannot load weights from {path} into the backbone: {error}") from None


@keras.saving.register_keras_serializable(package="captioner")
class Encoder(keras.layers.Layer):
    """Images (batch, S, S, 3) -> (batch, H, W, D).

    Images are uint8 pixels (``load_resized``), scaled for the backbone here, or floats
    already scaled (``preprocess_image``).

    Args:
        backbone: "small" or a keras.applications name (see ``captioner.config``).
        image_size: S.
        width: channels of the small CNN's first stage.
        fine_tune: whether the backbone trains. A frozen backbone runs in inference mode,
            so its batch-normalisation statistics stay as they were.

    The backbone is created with random weights here; pretrained weights are copied in by
    ``captioner.models.captioner.create_captioner``, and a saved model restores its own.
    """

    def __init__(self, backbone="small", image_size=96, width=32, fine_tune=True, **kwargs):
        super().__init__(**kwargs)
        self.backbone_name, self.image_size, self.width = backbone, image_size, width
        self.fine_tune = fine_tune
        self.backbone = build_backbone(backbone, image_size, width, weights=None)
        self.backbone.trainable = fine_tune
        shape = self.backbone.output_shape
        self.grid_shape = (int(shape[1]), int(shape[2]))
        self.feature_dim = int(shape[3])

    def build(self, images_shape):
        pass  # the backbone is a built functional model already

    def call(self, images, training=False):
        if keras.backend.standardize_dtype(images.dtype) == "uint8":  # static: traced per kind
            images = scale_pixels(ops.cast(images, "float32"), self.backbone_name)
        return self.backbone(images, training=training and self.fine_tune)

    def compute_output_shape(self, images_shape):
        return (images_shape[0],) + self.grid_shape + (self.feature_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(backbone=self.backbone_name, image_size=self.image_size, width=self.width,
                      fine_tune=self.fine_tune)
        return config
