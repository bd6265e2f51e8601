"""Jobs: the work a user starts, above the model and the predictors (``inference``) and the geometry
(``reconstruct``), importing both and imported by neither: ``infer`` (``infer.py``: one scene, its exports, bundle
adjustment, windows) and ``batch`` (``python -m vggt_jax.batch``: a dataset of scenes; ``scenes``, ``index`` and
``outputs`` are its parts)."""
