"""``ExportedPredictor``: the Predictor's interface over an exported model, for ``infer.py --exported DIR``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from vggt_jax.config import VGGTConfig
from vggt_jax.export.artifact import ExportedModel
from vggt_jax.inference.predictor import Predictions, predictions_from_outputs
from vggt_jax.inference.preprocess import ImageMeta


class ExportedPredictor:
    """``predictor(images, metas=metas) -> Predictions`` from the exported program of this machine's platform; the
    same postprocessing as ``Predictor`` (cameras decoded, depth unprojected). The exported forward has no track
    queries: tracking and bundle adjustment need the checkpoint."""

    def __init__(self, directory: str | os.PathLike, platform: str | None = None):
        self.exported = ExportedModel(directory, platform)
        # The exported program has no track head (no queries): infer.py's checks then say so.
        config = VGGTConfig.from_dict(self.exported.config)
        self.config = config.replace(dtype=self.exported.dtype, track_head=None)

    def __call__(
        self,
        images: np.ndarray,
        query_points: np.ndarray | None = None,
        metas: Sequence[ImageMeta] | None = None,
        *,
        keep_track_features: bool = False,
    ) -> Predictions:
        if query_points is not None or keep_track_features:
            raise ValueError(
                "the exported model runs the forward without track queries; --track/--queries/--ba need --checkpoint"
            )
        images = np.asarray(images)
        if tuple(images.shape[-2:]) != self.exported.image_hw:
            h, w = self.exported.image_hw
            raise ValueError(
                f"the images preprocess to {images.shape[-2]}x{images.shape[-1]} and the model was exported for "
                f"{h}x{w}; export for this size (python -m vggt_jax.export ... --image-size "
                f"{images.shape[-2]}x{images.shape[-1]}) or resize the inputs to {w / h:.3f} aspect"
            )
        return predictions_from_outputs(self.exported(images), images, metas)
