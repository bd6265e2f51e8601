"""Readers for real multi-view data layouts (COLMAP scene folders, CO3Dv2) -> ``sources.SceneRecord`` lists."""
