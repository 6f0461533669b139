"""``LazyModel``: a model whose config is known at once and which is built only when first used (a scan on ONNX
Runtime needs the config, and the PyTorch model only for heatmaps or an export)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import ModelConfig

if TYPE_CHECKING:
    from .temporal_model import TemporalDeepfakeModel


class LazyModel:
    """``config`` now, the model from ``build()`` on the first ``get()``, the same model on every later one.

    Built once, under a lock: a server's scan worker and its live viewers may ask from several threads at once.
    A build that raises is tried again on the next ``get()``.
    """

    def __init__(self, config: ModelConfig, build: Callable[[], TemporalDeepfakeModel]) -> None:
        self.config = config
        self._build: Callable[[], TemporalDeepfakeModel] | None = build
        self._model: TemporalDeepfakeModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: TemporalDeepfakeModel) -> LazyModel:
        """An already built ``model``."""
        lazy = cls(model.config, lambda: model)
        lazy._model, lazy._build = model, None
        return lazy

    @property
    def built(self) -> bool:
        """Whether the model has been built (``get`` returns without building)."""
        return self._model is not None

    def get(self) -> TemporalDeepfakeModel:
        """The model, built now if it was not yet."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                assert self._build is not None
                self._model = self._build()
                self._build = None  # drop what the builder held (a model to copy, a path)
            return self._model
