"""Jobs: the work a user starts, above the model (``inference``) and the geometry (``reconstruct``). The batch job
(``vggt_jax.jobs.batch``, ``python -m vggt_jax.batch``) reconstructs a dataset of scenes."""
