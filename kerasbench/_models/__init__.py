"""The benchmark model registry: ``list_models``, ``model_info``, ``create_model``.

Importing this package registers every model but builds none and does not
import Keras: the builders import it when `create_model` calls them.

Example:

```python
from kerasbench._models import create_model, list_models, model_info

list_models("resnet*")          # ['resnet50', 'resnet101', 'resnet152']
model_info("alexnet").params    # 61838248
model = create_model("alexnet", num_classes=10)
```
"""

from kerasbench._models import _applications, _tf_cnn  # noqa: F401  (registers the models)
from kerasbench._models._registry import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
