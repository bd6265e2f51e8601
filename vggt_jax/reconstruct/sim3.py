"""Similarities as 4x4 matrices, a robust (IRLS) Umeyama fit, and a Sim(3) pose graph (scipy least squares).

A similarity ``x' = s R x + t`` is the matrix ``[[s R, t], [0, 1]]``, so composing is a matrix product. The pose
graph holds one similarity per node (node 0 fixed) and edges ``(i, j, T_ij)`` measuring ``G_i^-1 G_j``; it minimises
the log-similarity residuals of every edge (``sim3_residual``) with ``scipy.optimize.least_squares`` on a sparse
Jacobian, so a graph of hundreds of windows solves in seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation

from vggt_jax.geometry.alignment import apply_similarity, umeyama


def sim3_matrix(scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = scale * np.asarray(rotation)
    out[:3, 3] = translation
    return out


def sim3_parts(matrix: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s, R, t)`` of a similarity matrix."""
    scale = float(np.cbrt(np.linalg.det(matrix[:3, :3])))
    return scale, matrix[:3, :3] / scale, matrix[:3, 3].copy()


def sim3_log(matrices: np.ndarray, length_scale: float = 1.0) -> np.ndarray:
    """``[..., 4, 4]`` -> ``[..., 7]``: (log s, rotation vector, t / length_scale); zero only for the identity."""
    lin = matrices[..., :3, :3]
    scale = np.cbrt(np.linalg.det(lin))
    rotvec = Rotation.from_matrix((lin / scale[..., None, None]).reshape(-1, 3, 3)).as_rotvec()
    rotvec = rotvec.reshape(*matrices.shape[:-2], 3)
    return np.concatenate([np.log(scale)[..., None], rotvec, matrices[..., :3, 3] / length_scale], axis=-1)


def sim3_exp(params: np.ndarray, length_scale: float = 1.0) -> np.ndarray:
    """Inverse of ``sim3_log``: ``[..., 7]`` -> ``[..., 4, 4]``."""
    lead = params.shape[:-1]
    rot = Rotation.from_rotvec(params.reshape(-1, 7)[:, 1:4]).as_matrix().reshape(*lead, 3, 3)
    out = np.zeros((*lead, 4, 4))
    out[..., :3, :3] = np.exp(params[..., :1])[..., None] * rot
    out[..., :3, 3] = params[..., 4:] * length_scale
    out[..., 3, 3] = 1.0
    return out


@dataclasses.dataclass(frozen=True)
class RobustFit:
    """A robust similarity fit: ``matrix`` (src -> dst), ``residual`` (RMS distance of the inliers after it),
    ``inlier_fraction`` (weight-free share of points within 3 robust sigmas) and ``points`` (how many were used)."""

    matrix: np.ndarray
    residual: float
    inlier_fraction: float
    points: int


def robust_sim3(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray, iterations: int = 10, huber_k: float = 2.0
) -> RobustFit:
    """Confidence-weighted Umeyama inside iteratively re-weighted least squares with a Huber loss: each round
    weights point i by ``weights_i * min(1, k sigma / r_i)``, ``r_i`` its distance after the last fit and ``sigma``
    1.4826 x the median distance (a robust scale), so outliers (wrong depth at an edge, sky) lose their pull."""
    src, dst, weights = np.asarray(src, np.float64), np.asarray(dst, np.float64), np.asarray(weights, np.float64)
    robust = np.ones(len(src))
    for _ in range(max(iterations, 1)):
        scale, rot, trans = umeyama(src, dst, weights * robust)
        r = np.linalg.norm(apply_similarity(src, scale, rot, trans) - dst, axis=-1)
        sigma = max(1.4826 * float(np.median(r)), 1e-12)
        new = np.minimum(1.0, huber_k * sigma / np.maximum(r, 1e-300))
        if np.allclose(new, robust, rtol=0, atol=1e-6):
            break
        robust = new
    inliers = r <= 3 * sigma
    residual = float(np.sqrt(np.mean(r[inliers] ** 2))) if inliers.any() else float("inf")
    return RobustFit(sim3_matrix(scale, rot, trans), residual, float(np.mean(inliers)), len(src))


def edge_residuals(nodes: np.ndarray, edges: list[tuple[int, int, np.ndarray]], length_scale: float) -> np.ndarray:
    """``[E, 7]``: ``log(T_ij^-1 G_i^-1 G_j)`` of every edge."""
    i = np.array([e[0] for e in edges])
    j = np.array([e[1] for e in edges])
    measured_inv = np.linalg.inv(np.stack([e[2] for e in edges]))
    err = measured_inv @ np.linalg.inv(nodes[i]) @ nodes[j]
    return sim3_log(err, length_scale)


def optimize_pose_graph(
    nodes: np.ndarray, edges: list[tuple[int, int, np.ndarray]], length_scale: float
) -> tuple[np.ndarray, float, float]:
    """Nodes ``[K, 4, 4]`` (node 0 stays fixed) fitted to the edges; returns (nodes, RMS residual before, after).
    Each node moves by a right-multiplied increment ``G_k exp(delta_k)``, started at zero."""
    k = len(nodes)
    if k < 2 or not edges:
        return nodes, 0.0, 0.0

    def full(delta: np.ndarray) -> np.ndarray:
        inc = sim3_exp(np.concatenate([np.zeros((1, 7)), delta.reshape(k - 1, 7)]), length_scale)
        return nodes @ inc

    def fun(delta: np.ndarray) -> np.ndarray:
        return edge_residuals(full(delta), edges, length_scale).ravel()

    sparsity = lil_matrix((7 * len(edges), 7 * (k - 1)), dtype=int)
    for row, (i, j, _) in enumerate(edges):
        for node in (i, j):
            if node > 0:
                sparsity[7 * row : 7 * row + 7, 7 * (node - 1) : 7 * node] = 1
    x0 = np.zeros(7 * (k - 1))
    before = float(np.sqrt(np.mean(fun(x0) ** 2)))
    solution = least_squares(fun, x0, jac_sparsity=sparsity, method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12)
    return full(solution.x), before, float(np.sqrt(np.mean(solution.fun**2)))
