"""Inference: preprocessing, the jitted predictor and the exports other tools read."""
