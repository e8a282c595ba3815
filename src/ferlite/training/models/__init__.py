"""Model registry: ``create_model(name, **kw)`` and ``list_models()``, one file per architecture."""

from ferlite.training.models import mobilefacenet as _mobilefacenet  # noqa: F401  (registers its models)
from ferlite.training.models import mobilenet as _mobilenet  # noqa: F401
from ferlite.training.models._registry import count_macs, create_model, list_models, model_info, register_model

__all__ = ["count_macs", "create_model", "list_models", "model_info", "register_model"]
