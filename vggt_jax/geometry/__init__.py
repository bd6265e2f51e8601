"""Camera geometry as pure functions of numpy or jax.numpy arrays (``xnp=np`` or ``xnp=jnp``).

Conventions: extrinsics are camera-from-world ``[R | t]`` with OpenCV axes; quaternions are XYZW with ``qw >= 0``;
intrinsics are in pixels with pixel centres at integer coordinates (see ``cameras``).
"""

from vggt_jax.geometry.alignment import (
    align_cameras,
    apply_similarity,
    relative_pose_errors,
    transform_extrinsics,
    umeyama,
)
from vggt_jax.geometry.cameras import (
    cam_to_world_points,
    camera_centers,
    closed_form_inverse_se3,
    depth_to_cam_points,
    depth_to_world_points,
    intrinsics_to_corner_convention,
    look_at,
    opencv_to_opengl_cam_to_world,
    pixel_grid,
    pixel_rays,
    project_points,
    transform_points,
    unproject_depth_map_to_point_map,
    warp_intrinsics,
    world_to_cam_points,
)
from vggt_jax.geometry.pose_enc import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from vggt_jax.geometry.rotation import (
    mat_to_quat,
    quat_to_mat,
    quat_wxyz_to_xyzw,
    quat_xyzw_to_wxyz,
    standardize_quaternion,
)

__all__ = [
    "align_cameras",
    "apply_similarity",
    "cam_to_world_points",
    "camera_centers",
    "closed_form_inverse_se3",
    "depth_to_cam_points",
    "depth_to_world_points",
    "extri_intri_to_pose_encoding",
    "intrinsics_to_corner_convention",
    "look_at",
    "mat_to_quat",
    "opencv_to_opengl_cam_to_world",
    "pixel_grid",
    "pixel_rays",
    "pose_encoding_to_extri_intri",
    "project_points",
    "quat_to_mat",
    "quat_wxyz_to_xyzw",
    "quat_xyzw_to_wxyz",
    "relative_pose_errors",
    "standardize_quaternion",
    "transform_extrinsics",
    "transform_points",
    "umeyama",
    "unproject_depth_map_to_point_map",
    "warp_intrinsics",
    "world_to_cam_points",
]
