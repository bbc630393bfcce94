"""The Keras backends kerasbench describes, and the framework behind each.

A leaf module (it imports nothing), so that every other module can name the
frameworks without an import cycle.
"""

# Keras backend -> the framework's name in sentences.
FRAMEWORKS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
# Keras backend -> the `Sources` field that imports its framework.
IMPORT_FIELDS = {"tensorflow": "import_tensorflow", "jax": "import_jax", "torch": "import_torch"}
