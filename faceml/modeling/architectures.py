"""Named architecture presets (like timm / keras-hub): register a trunk in a few lines, build
by name.

    from faceml.modeling import architectures
    architectures.names()                       # ['mlp', 'small_cnn', ..., 'custom']
    architectures.get("default_cnn")            # ArchSpec: title, default size/colour, defaults...
    architectures.check("vgg16", 64, "rgb", heads, weights=None)   # ConfigError if it can't work
    model = architectures.build("default_cnn", image_size=64, color="rgb", heads=heads,
                                mean=mean, std=std, augmentation=[{"type": "flip"}])
    architectures.layer_table(model); architectures.param_counts(model)

Every model takes raw 0–255 pixels, starts with FacePreprocessing and returns a dict
``{head.name: output}``. Importing this module registers :class:`ImageNetPreprocessing`, which
saved transfer models (VGG16) need to load.
"""

from faceml.modeling import presets  # noqa: F401  (registers the built-in presets)
from faceml.modeling.builder import (
    AUGMENTATIONS,
    ArchSpec,
    SpatialStep,
    build,
    check,
    conv_step,
    final_map_size,
    get,
    head_output,
    layer_table,
    names,
    param_counts,
    pool_step,
    register,
)
from faceml.modeling.layers import ImageNetPreprocessing

__all__ = [
    "AUGMENTATIONS",
    "ArchSpec",
    "ImageNetPreprocessing",
    "SpatialStep",
    "build",
    "check",
    "conv_step",
    "final_map_size",
    "get",
    "head_output",
    "layer_table",
    "names",
    "param_counts",
    "pool_step",
    "register",
]
