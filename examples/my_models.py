"""Models of your own, registered with kerasbench: import this module first.

    import my_models                  # registers "small_cnn"
    kerasbench.reference("small_cnn", batch_size=64)

A registered model runs wherever a built-in one does: `create_model`,
`reference`, and `sweep`, whose worker processes import this module by its
name. So it must be importable in a fresh Python process: installed, on
PYTHONPATH, or in the folder the sweep runs from (see docs/adding-models.md).
"""

from kerasbench import register_model


@register_model(
    "small_cnn",
    image_size=32,          # default input: 32x32x3
    min_image_size=6,       # two 3x3 convolutions (6 -> 4 -> 2) and a 2x2 pooling
    params=3_487_912,       # model.count_params() at image_size, 1000 classes
    description="Two 3x3 convolutions, max-pooling, a 256-unit dense layer.",
    source="examples/my_models.py",
)
def small_cnn(input_shape, num_classes, data_format):
    import keras  # inside the builder: importing this module stays cheap

    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(32, 3, activation="relu", data_format=data_format)(inputs)
    x = layers.Conv2D(64, 3, activation="relu", data_format=data_format)(x)
    x = layers.MaxPooling2D(data_format=data_format)(x)
    x = layers.Flatten(data_format=data_format)(x)
    x = layers.Dense(256, activation="relu")(x)
    # Logits, no softmax: reference() compiles with from_logits=True.
    return keras.Model(inputs, layers.Dense(num_classes)(x), name="small_cnn")
