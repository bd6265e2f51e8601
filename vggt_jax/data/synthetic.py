"""Procedural multi-view scenes with exact ground truth, ray-cast in numpy.

A scene is an open-topped room (floor and four walls) holding a few oriented boxes and spheres. Every surface carries
a solid (3D) texture: value-noise octaves mixed with checkers or stripes, coloured per object and lit by a fixed
Lambertian light, so a surface point has the same colour in every view and views can be matched. Rays that leave
through the open top see a sky gradient and have no depth (depth 0, invalid), which exercises validity masks.

Cameras follow one of five trajectories drawn per scene: ``orbit`` (an arc of 20-150 degrees around the objects:
baseline grows with the arc), ``dolly`` (moving towards the objects), ``pan`` (fixed centre, rotating: zero baseline),
``turn`` (the pan's rotation about a vertical axis 0.3-0.6 behind the camera, as a person turning on the spot with
the camera held out: a small baseline that follows the rotation) and ``random`` (independent wide-baseline views).
All cameras stay outside the objects and inside the room.

Conventions: world z is up; extrinsics are camera-from-world [R | t] with OpenCV axes; intrinsics in pixels with pixel
centres at integer coordinates; depth is camera z. Everything is deterministic from the seed.

    scene = SyntheticScene(seed=0, num_frames=8, height=140, width=140)
    views = scene.render()                       # images [S,H,W,3], depths, valid, world_points, cameras
    tracks, vis = scene.tracks(points_world)     # [S,N,2], [S,N] by projection + exact ray-cast occlusion test
"""

from __future__ import annotations

import functools

import numpy as np

from vggt_jax.data.augment import distorted_pixel_rays
from vggt_jax.geometry import camera_centers, look_at, pixel_grid, pixel_rays, project_points, transform_points

TRAJECTORIES = ("orbit", "dolly", "pan", "turn", "random")
_LIGHT = np.array([0.35, 0.55, 1.0]) / np.linalg.norm([0.35, 0.55, 1.0])
_EPS_T = 1e-7
_PLURAL = dict(
    image="images",
    depth="depths",
    valid="valid",
    world_points="world_points",
    extrinsic="extrinsics",
    intrinsic="intrinsics",
)


def _seed_sequence(*entropy: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(e) for e in entropy])


def check_trajectories(kinds: tuple[str, ...]) -> None:
    unknown = [k for k in kinds if k not in TRAJECTORIES]
    if not kinds or unknown:
        raise ValueError(f"synthetic trajectories must be a non-empty subset of {TRAJECTORIES}, got {kinds!r}")


class SyntheticScene:
    """One procedural scene and its camera trajectory.

    Attributes:
      extrinsics: ``[S, 3, 4]`` float64 camera-from-world.
      intrinsics: ``[S, 3, 3]`` float64.
      height, width: the rendering size of the trajectory's frames.
      trajectory: which of ``TRAJECTORIES`` the cameras follow (the constructor's ``trajectory``, or drawn from its
        ``trajectories``; the scene itself does not depend on that choice).
    """

    def __init__(
        self,
        seed: int,
        num_frames: int = 8,
        height: int = 140,
        width: int = 140,
        trajectory: str | None = None,
        texture_scale: float = 1.0,
        trajectories: tuple[str, ...] = TRAJECTORIES,
    ):
        check_trajectories((trajectory,) if trajectory is not None else trajectories)
        rng = np.random.default_rng(_seed_sequence(0x5CE7E, seed))
        self.seed, self.height, self.width = int(seed), int(height), int(width)
        self.name = f"synthetic_{seed}"
        self._build_geometry(rng, texture_scale)
        self.trajectory = trajectory or trajectories[rng.integers(len(trajectories))]
        self.extrinsics = self._make_trajectory(rng, self.trajectory, num_frames)
        fov_x = np.deg2rad(rng.uniform(50.0, 75.0))
        focal = 0.5 * width / np.tan(0.5 * fov_x)
        # Off-centre principal points, so crops that re-centre it are exercised.
        cx = (width - 1) / 2 + rng.uniform(-0.04, 0.04) * width
        cy = (height - 1) / 2 + rng.uniform(-0.04, 0.04) * height
        intrinsic = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
        self.intrinsics = np.repeat(intrinsic[None], num_frames, axis=0)

    @property
    def num_frames(self) -> int:
        return len(self.extrinsics)

    # ----------------------------------------------------------------------------------------------- construction
    def _build_geometry(self, rng: np.random.Generator, texture_scale: float) -> None:
        self.room_half = rng.uniform(4.5, 6.0, size=2)
        self.wall_height = rng.uniform(2.5, 3.5)
        num_boxes, num_spheres = rng.integers(3, 7), rng.integers(1, 4)
        # Objects stay within ~1.9 of the z axis and cameras beyond 2.2: no camera starts inside an object.
        radius, angle = rng.uniform(0.0, 1.2, num_boxes), rng.uniform(0, 2 * np.pi, num_boxes)
        self.box_half = rng.uniform(0.15, 0.5, size=(num_boxes, 3))
        lift = np.where(rng.random(num_boxes) < 0.3, rng.uniform(0.2, 1.2, num_boxes), 0.0)
        self.box_center = np.stack(
            [radius * np.cos(angle), radius * np.sin(angle), self.box_half[:, 2] + lift], axis=-1
        )
        yaw = rng.uniform(0, np.pi, num_boxes)
        c, s, z, o = np.cos(yaw), np.sin(yaw), np.zeros(num_boxes), np.ones(num_boxes)
        self.box_rot = np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)
        radius, angle = rng.uniform(0.0, 1.3, num_spheres), rng.uniform(0, 2 * np.pi, num_spheres)
        self.sphere_radius = rng.uniform(0.2, 0.45, num_spheres)
        height = self.sphere_radius + np.where(rng.random(num_spheres) < 0.5, rng.uniform(0, 1.0, num_spheres), 0)
        self.sphere_center = np.stack([radius * np.cos(angle), radius * np.sin(angle), height], axis=-1)
        # Object ids: 0 floor, 1-4 walls (+x, -x, +y, -y), then boxes, then spheres.
        num_objects = 5 + num_boxes + num_spheres
        self.tex_color_a = rng.uniform(0.0, 0.4, size=(num_objects, 3))
        self.tex_color_b = rng.uniform(0.6, 1.0, size=(num_objects, 3))
        # Lattice cells per world unit: the finest octave (x4) has cells of ~2-3 px at 140 px, a 60-degree FOV and
        # 3 units away, fine enough to match views and coarse enough not to alias much.
        self.tex_freq = rng.uniform(3.0, 5.0, num_objects) * texture_scale
        self.tex_pattern = rng.integers(0, 3, num_objects)
        self.tex_offset = rng.uniform(0, 256, size=(num_objects, 3))
        self.tex_dir = rng.normal(size=(num_objects, 3))
        self.tex_dir /= np.linalg.norm(self.tex_dir, axis=-1, keepdims=True)
        self._perm = np.tile(rng.permutation(256), 2)

    def _make_trajectory(self, rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
        up = np.array([0.0, 0.0, 1.0])
        a0 = rng.uniform(0, 2 * np.pi)
        frac = np.linspace(0.0, 1.0, n)
        if kind == "orbit":
            span = np.deg2rad(rng.uniform(20, 150))
            ang = a0 + span * frac
            r = rng.uniform(2.4, 3.4) + 0.1 * np.sin(3 * ang)
            eyes = np.stack([r * np.cos(ang), r * np.sin(ang), rng.uniform(0.9, 1.7) + 0.1 * np.cos(2 * ang)], -1)
            targets = np.array([0.0, 0.0, rng.uniform(0.3, 0.9)]) + rng.normal(0, 0.12, (n, 3))
        elif kind == "dolly":
            r = 3.6 - rng.uniform(0.6, 1.4) * frac
            lateral = rng.uniform(-0.4, 0.4) * frac
            ang = a0 + lateral / 3.0
            eyes = np.stack([r * np.cos(ang), r * np.sin(ang), rng.uniform(0.9, 1.6) + 0.05 * frac], -1)
            targets = np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.1, (n, 3))
        elif kind in ("pan", "turn"):
            r = rng.uniform(2.4, 3.4)
            eye = np.array([r * np.cos(a0), r * np.sin(a0), rng.uniform(0.9, 1.7)])
            eyes = np.repeat(eye[None], n, axis=0)
            span = np.deg2rad(rng.uniform(20, 60))
            yaw = np.arctan2(-eye[1], -eye[0]) + span * (frac - 0.5)
            pitch = -np.deg2rad(rng.uniform(5, 20))
            look = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.full(n, np.sin(pitch))], -1)
            if kind == "turn":
                # The camera swings about a vertical axis ``arm`` behind it (a person turning on the spot, the
                # camera held out): the pivot is ``arm`` further from the room's centre than the middle frame.
                arm = rng.uniform(0.3, 0.6)
                pivot = eye + arm * np.array([np.cos(a0), np.sin(a0), 0.0])
                eyes = pivot + arm * np.stack([np.cos(yaw), np.sin(yaw), np.zeros(n)], -1)
            targets = eyes + look
        else:  # random
            ang = rng.uniform(0, 2 * np.pi, n)
            r = rng.uniform(2.2, 3.6, n)
            eyes = np.stack([r * np.cos(ang), r * np.sin(ang), rng.uniform(0.6, 2.0, n)], -1)
            targets = rng.normal(0, 0.35, (n, 3)) + np.array([0.0, 0.0, 0.6])
        rolls = rng.normal(0.0, np.deg2rad(3.0), n)
        return np.stack([look_at(e, t, up, roll) for e, t, roll in zip(eyes, targets, rolls, strict=True)])

    # ----------------------------------------------------------------------------------------------- ray casting
    def cast(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First hits of rays ``origins + t * directions`` (directions need not be unit length).

        Args:
          origins: ``[3]`` (one origin for all rays, the fast path) or ``[N, 3]``, inside the room.
          directions: ``[N, 3]`` world directions.
        Returns:
          ``t [N]`` (inf where the ray escapes) and ``object_id [N]`` int (-1 where it escapes).
        """
        # Components as separate 1D arrays: numpy is several times faster on them than on reductions over a
        # trailing axis of size 3.
        d = np.where(np.abs(directions) < 1e-12, 1e-12, directions)
        dx, dy, dz = d.T.copy()
        o = np.asarray(origins, np.float64)
        ox, oy, oz = o.T
        best_t = np.full(len(d), np.inf)
        best_id = np.full(len(d), -1)

        def take(hit, t, obj):
            best_t[hit] = t[hit]
            best_id[hit] = obj if np.isscalar(obj) else obj[hit]

        # Room: the nearest wall or floor crossing; a wall crossing above the walls' top escapes to the sky.
        for da, oa, half, ids in ((dx, ox, self.room_half[0], (1, 2)), (dy, oy, self.room_half[1], (3, 4))):
            t = (np.where(da > 0, half, -half) - oa) / da
            take((t > _EPS_T) & (t < best_t) & (oz + t * dz <= self.wall_height), t, np.where(da > 0, *ids))
        t = -oz / dz
        take((dz < 0) & (t > _EPS_T) & (t < best_t), t, 0)
        a = dx * dx + dy * dy + dz * dz
        for k in range(len(self.box_center)):
            # Only rays that meet the box's bounding sphere get the (costlier) slab test.
            cx, cy, cz = (self.box_center[k] - o).T
            along = dx * cx + dy * cy + dz * cz
            r2 = np.dot(self.box_half[k], self.box_half[k])
            near = np.nonzero(along * along >= a * (cx * cx + cy * cy + cz * cz - r2))[0]
            rot = self.box_rot[k]
            # Into the box frame.
            local_o = transform_points((o if o.ndim == 1 else o[near]) - self.box_center[k], rot.T)
            local_d = transform_points(d[near], rot.T)
            t_in, t_out = np.full(len(near), -np.inf), np.full(len(near), np.inf)
            for axis in range(3):
                inv = 1.0 / np.where(np.abs(local_d[:, axis]) < 1e-12, 1e-12, local_d[:, axis])
                ta = (-self.box_half[k, axis] - local_o[..., axis]) * inv
                tb = (self.box_half[k, axis] - local_o[..., axis]) * inv
                t_in, t_out = np.maximum(t_in, np.minimum(ta, tb)), np.minimum(t_out, np.maximum(ta, tb))
            hit = (t_in <= t_out) & (t_in > _EPS_T) & (t_in < best_t[near])
            best_t[near[hit]] = t_in[hit]
            best_id[near[hit]] = 5 + k
        for k in range(len(self.sphere_center)):
            cx, cy, cz = (o - self.sphere_center[k]).T
            b = 2 * (dx * cx + dy * cy + dz * cz)
            c = cx * cx + cy * cy + cz * cz - self.sphere_radius[k] ** 2
            disc = b * b - 4 * a * c
            t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
            take((disc >= 0) & (t > _EPS_T) & (t < best_t), t, 5 + len(self.box_center) + k)
        return best_t, best_id

    def normals(self, points: np.ndarray, object_id: np.ndarray) -> np.ndarray:
        """Outward unit normals ``[N, 3]`` of the surfaces ``object_id [N]`` at ``points [N, 3]`` (0 for sky)."""
        normal = np.zeros_like(points)
        normal[object_id == 0] = (0.0, 0.0, 1.0)
        for oid, n in ((1, (-1.0, 0, 0)), (2, (1.0, 0, 0)), (3, (0, -1.0, 0)), (4, (0, 1.0, 0))):
            normal[object_id == oid] = n
        for k in range(len(self.box_center)):
            sel = object_id == 5 + k
            local = transform_points(points[sel] - self.box_center[k], self.box_rot[k].T)
            face = np.abs(local / self.box_half[k]).argmax(-1)  # the face the point lies on
            n = np.zeros_like(local)
            n[np.arange(len(local)), face] = np.sign(local[np.arange(len(local)), face])
            normal[sel] = transform_points(n, self.box_rot[k])
        for k in range(len(self.sphere_center)):
            sel = object_id == 5 + len(self.box_center) + k
            normal[sel] = (points[sel] - self.sphere_center[k]) / self.sphere_radius[k]
        return normal

    def shade(self, points: np.ndarray, object_id: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Colours ``[N, 3]`` in [0, 1] of hit points (texture x light), sky where ``object_id < 0``."""
        colour = np.empty((len(points), 3), np.float32)
        hit = object_id >= 0
        obj = object_id[hit]
        # Texture coordinates in float32 (offsets < 260: ~3e-5 lattice units of round-off).
        p = (points[hit] * self.tex_freq[obj, None] + self.tex_offset[obj]).astype(np.float32).T.copy()
        # fBm clusters around 0.5; stretching it restores contrast for matching.
        noise = np.clip((_fbm(p, self._perm) - 0.5) * 2.5 + 0.5, 0.0, 1.0)
        pattern = self.tex_pattern[obj]
        checker = ((np.floor(p[0] / 2) + np.floor(p[1] / 2) + np.floor(p[2] / 2)) % 2).astype(np.float32)
        direction = self.tex_dir[obj].astype(np.float32)
        phase = p[0] * direction[:, 0] + p[1] * direction[:, 1] + p[2] * direction[:, 2]
        stripes = 0.5 + 0.5 * np.sin(np.float32(2 * np.pi / 1.7) * phase)
        value = np.where(
            pattern == 0, noise, np.where(pattern == 1, 0.45 * checker + 0.55 * noise, 0.4 * stripes + 0.6 * noise)
        )
        base = self.tex_color_a[obj] * (1 - value[:, None]) + self.tex_color_b[obj] * value[:, None]
        light = 0.45 + 0.55 * np.clip(transform_points(self.normals(points[hit], obj), _LIGHT[None])[:, 0], 0, 1)
        colour[hit] = base * light[:, None]
        elevation = directions[~hit, 2] / np.linalg.norm(directions[~hit], axis=-1)
        sky = np.clip(elevation, 0, 1)[:, None]
        colour[~hit] = (1 - sky) * np.array([0.85, 0.9, 1.0]) + sky * np.array([0.35, 0.55, 0.9])
        return np.clip(colour, 0.0, 1.0)

    # ----------------------------------------------------------------------------------------------- rendering
    def render_view(
        self, extrinsic: np.ndarray, intrinsic: np.ndarray, height: int, width: int, distortion=None
    ) -> dict:
        """Render one camera (``distortion (k1, k2)``: through that lens, as ``augment.radial_distort`` models it).

        Returns a dict: ``image [H, W, 3]`` float32 in [0, 1], ``depth [H, W]`` float32 (0 where invalid), ``valid
        [H, W]`` bool, ``world_points [H, W, 3]`` float32 (0 where invalid), ``extrinsic [3, 4]``, ``intrinsic
        [3, 3]`` (float64).
        """
        if distortion is None:
            rays_cam = pixel_rays(*pixel_grid(height, width), intrinsic).reshape(-1, 3)
        else:
            rays_cam = distorted_pixel_rays(*pixel_grid(height, width), intrinsic, distortion).reshape(-1, 3)
        rot = extrinsic[:3, :3]
        directions = transform_points(rays_cam, rot.T)  # world directions whose camera z component is 1
        origin = camera_centers(extrinsic)
        t, obj = self.cast(origin, directions)
        valid = obj >= 0
        points = origin + np.where(valid, t, 0.0)[:, None] * directions
        image = self.shade(points, obj, directions)
        # With camera-z-normalised directions the ray parameter t is the depth itself.
        depth = np.where(valid, t, 0.0)
        return dict(
            image=image.reshape(height, width, 3).astype(np.float32),
            depth=depth.reshape(height, width).astype(np.float32),
            valid=valid.reshape(height, width),
            world_points=np.where(valid[:, None], points, 0.0).reshape(height, width, 3).astype(np.float32),
            extrinsic=np.asarray(extrinsic, np.float64),
            intrinsic=np.asarray(intrinsic, np.float64),
        )

    def render(self, frame_ids=None) -> dict:
        """Render trajectory frames; the keys of ``render_view`` pluralised and stacked: ``images [S, H, W, 3]``,
        ``depths [S, H, W]``, ``valid``, ``world_points [S, H, W, 3]``, ``extrinsics [S, 3, 4]``, ``intrinsics``."""
        ids = range(self.num_frames) if frame_ids is None else frame_ids
        views = [self.render_view(self.extrinsics[i], self.intrinsics[i], self.height, self.width) for i in ids]
        return {plural: np.stack([v[key] for v in views]) for key, plural in _PLURAL.items()}

    # ----------------------------------------------------------------------------------------------- correspondences
    def points_at(self, frame: int, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points seen at sub-pixel positions ``uv [N, 2]`` of ``frame``: ``points [N, 3]``, ``valid [N]``."""
        rays_cam = pixel_rays(uv[..., 0], uv[..., 1], self.intrinsics[frame])
        rays = transform_points(rays_cam, self.extrinsics[frame, :3, :3].T)
        origin = camera_centers(self.extrinsics[frame])
        t, obj = self.cast(origin, rays)
        valid = obj >= 0
        return origin + np.where(valid, t, 0.0)[:, None] * rays, valid

    def tracks(self, points: np.ndarray, frame_ids=None, extrinsics=None, intrinsics=None, hw=None):
        """Ground-truth 2D tracks of surface points ``[N, 3]``.

        Each point is projected into every camera (the scene's trajectory, or the given ``extrinsics [S, 3, 4]`` /
        ``intrinsics [S, 3, 3]`` at size ``hw``); it is visible where it lies in front of the camera, inside the image
        (``[-0.5, W - 0.5]``) and the ray from the camera centre to it meets no surface before it (an exact depth
        test: the ray-cast depth at the projected position equals the point's depth).

        Returns ``tracks [S, N, 2]`` float64 (x, y) and ``visible [S, N]`` bool.
        """
        if extrinsics is None:
            ids = range(self.num_frames) if frame_ids is None else frame_ids
            extrinsics, intrinsics = self.extrinsics[list(ids)], self.intrinsics[list(ids)]
        height, width = hw or (self.height, self.width)
        tracks, visible = [], []
        for ext, intr in zip(extrinsics, intrinsics, strict=True):
            uv, z = project_points(points, ext, intr)
            centre = camera_centers(ext)
            t, _ = self.cast(centre, points - centre)
            inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5)
            # t is in units of the camera-to-point vector, so an unoccluded point is hit at t = 1 (up to round-off).
            visible.append((z > 1e-6) & inside & (t >= 1 - 1e-6))
            tracks.append(np.where(np.isfinite(uv), uv, 0.0))
        return np.stack(tracks), np.stack(visible)


def _fbm(p: np.ndarray, perm: np.ndarray, octaves: int = 3) -> np.ndarray:
    """Fractal value noise in [0, 1] at points ``p [3, N]`` (lattice values hashed through ``perm``)."""
    total, amplitude, norm = np.zeros(p.shape[1], p.dtype), 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * _value_noise(p * np.float32(2.0**octave) + np.float32(17.0 * octave), perm)
        norm += amplitude
        amplitude *= 0.5
    return total / np.float32(norm)


def _value_noise(p: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Trilinearly interpolated hashed lattice values at ``p [3, N]``, smoothstep-weighted (C1 across cells)."""
    cell = np.floor(p)
    f = p - cell
    w = f * f * (3 - 2 * f)
    i0 = cell.astype(np.int64) & 255
    i1 = (i0 + 1) & 255
    # hash(x, y, z) = perm[perm[perm[x] + y] + z] (perm is doubled, so the sums stay in range), shared per level.
    a = [perm[i0[0]], perm[i1[0]]]
    b = [[perm[a[x] + iy] for iy in (i0[1], i1[1])] for x in (0, 1)]
    c = [[[perm[b[x][y] + iz].astype(p.dtype) for iz in (i0[2], i1[2])] for y in (0, 1)] for x in (0, 1)]

    def lerp(lo, hi, t):
        return lo + t * (hi - lo)

    e = [[lerp(c[0][y][z], c[1][y][z], w[0]) for z in (0, 1)] for y in (0, 1)]
    g = [lerp(e[0][z], e[1][z], w[1]) for z in (0, 1)]
    return lerp(g[0], g[1], w[2]) / np.float32(255)


class SyntheticSource:
    """A scene source (see ``vggt_jax.data.sources``) of ``num_scenes`` synthetic scenes, rendered on demand.

    Scene ``i`` is ``SyntheticScene(seed=hash(seed, i), trajectories=trajectories)``; frames are rendered when
    loaded, as uint8 images like the file-backed sources. Picklable (grain workers receive a copy).
    """

    def __init__(
        self,
        num_scenes: int,
        num_frames: int = 24,
        height: int = 140,
        width: int = 140,
        seed: int = 0,
        trajectories: tuple[str, ...] = TRAJECTORIES,
    ):
        self.num_scenes, self.frames_per_scene = int(num_scenes), int(num_frames)
        self.height, self.width, self.seed = int(height), int(width), int(seed)
        self.trajectories = tuple(trajectories)
        check_trajectories(self.trajectories)

    def __len__(self) -> int:
        return self.num_scenes

    def scene(self, index: int) -> SyntheticScene:
        return _cached_scene(self.scene_seed(index), self.frames_per_scene, self.height, self.width, self.trajectories)

    def scene_seed(self, index: int) -> int:
        return int(_seed_sequence(self.seed, index).generate_state(1)[0])

    def scene_name(self, index: int) -> str:
        return f"synthetic_{self.seed}_{index}"

    def num_frames(self, index: int) -> int:
        return self.frames_per_scene

    def load_frame(self, index: int, frame: int) -> dict:
        scene = self.scene(index)
        view = scene.render_view(scene.extrinsics[frame], scene.intrinsics[frame], self.height, self.width)
        return dict(
            image=np.round(view["image"] * 255).astype(np.uint8),
            depth=view["depth"],
            extrinsic=view["extrinsic"],
            intrinsic=view["intrinsic"],
            has_depth=True,
            name=f"frame{frame:04d}",
        )


@functools.lru_cache(maxsize=8)
def _cached_scene(seed: int, num_frames: int, height: int, width: int, trajectories: tuple[str, ...]) -> SyntheticScene:
    return SyntheticScene(seed, num_frames, height, width, trajectories=trajectories)
