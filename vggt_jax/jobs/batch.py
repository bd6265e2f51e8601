"""The batch job: thousands of scenes through one compiled model, on every local device of every process.

    python -m vggt_jax.batch --scenes MANIFEST|ROOT --checkpoint CKPT --out OUT [--frames 16] [--outputs ...]

Per process (``jax.distributed``: one per host; the scenes split by manifest position, ``scenes.process_share``):

- a grain pipeline decodes, samples (``--frames`` uniform over the clip, or ``--stride``) and preprocesses scenes
  on worker threads ahead of the forward (``--workers``, ``--prefetch``);
- scenes are grouped by input size and run ``B = --scenes_per_device x local devices`` at a time in one forward
  (the model's batch axis, sharded over the local devices); every forward of a size has the same shape (a short
  batch is filled with copies, a short scene padded with masked frames), so one program per size is compiled
  once (the persistent compilation cache keeps it across restarts) and a scene's outputs do not depend on which
  scenes share its batch: a resumed job equals an uninterrupted one bit for bit;
- a thread pool writes each scene into ``OUT/scenes/.ID.partial`` and renames it to ``OUT/scenes/ID``, then its
  row goes to the index (``vggt_jax.jobs.index``); a scene that fails (unreadable images, too few frames,
  degenerate cameras) gets its error in the index and the job goes on;
- a rerun of the same command skips finished scenes (any process's, any process count) and does the rest.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vggt_jax.jobs import index as index_lib
from vggt_jax.jobs import outputs as outputs_lib
from vggt_jax.jobs.scenes import Scene, process_share, read_scenes, scene_inputs

SCENES = "scenes"


@dataclasses.dataclass
class BatchOptions:
    """What ``python -m vggt_jax.batch``'s flags set."""

    scenes: str  # a manifest (JSON lines) or a root folder of scene folders
    out: str
    checkpoint: str
    config: str | None = None  # the variant of a raw state dict (None: told from its keys)
    frames: int = 16  # frames per scene, uniform over the clip (a shorter scene runs with masked padding)
    stride: int | None = None  # every k-th image before the frame limit
    min_frames: int = 1  # a scene with fewer readable frames fails
    outputs: Sequence[str] = ("cameras", "depth", "confidence")
    scenes_per_device: int = 1
    mode: str | None = None  # preprocessing, as infer.py (default the family's)
    image_resolution: int | None = None
    dtype: str | None = None
    workers: int = 4  # decoding/preprocessing threads
    prefetch: int = 4  # scenes decoded ahead of the forward
    writers: int = 2  # output-writing threads
    quiet: bool = False

    def check(self) -> None:
        outputs_lib.check_outputs(self.outputs)
        for name in ("frames", "min_frames", "scenes_per_device", "workers", "prefetch", "writers"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"--stride must be >= 1, got {self.stride}")


@dataclasses.dataclass
class Loaded:
    """One scene out of the pipeline: its images or the error that stopped them."""

    scene: Scene
    order: int
    images: np.ndarray | None = None
    metas: list | None = None
    frame_indices: list[int] | None = None
    error: str | None = None


@dataclasses.dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    forwards: int = 0
    forward_s: float = 0.0  # device time of the forwards after each size's first (compile) one
    steady_wall_s: float = 0.0  # wall time from the end of the first forward to the end of the last
    compile_s: float = 0.0
    wall_s: float = 0.0

    steady_forwards: int = 0

    @property
    def busy(self) -> float | None:
        """The fraction of the steady-state wall time the forward was running (None without a steady forward)."""
        return self.forward_s / self.steady_wall_s if self.steady_forwards and self.steady_wall_s > 0 else None


def load_scene(scene: Scene, order: int, config, opts: BatchOptions) -> Loaded:
    """Decode, sample and preprocess one scene; any input error becomes ``Loaded.error`` (the job goes on)."""
    from vggt_jax.inference.family import preprocess_for

    try:
        indices, items = scene_inputs(scene, opts.frames, opts.stride)
        if len(items) < opts.min_frames:
            raise ValueError(f"{len(items)} frame(s), fewer than --min_frames {opts.min_frames}")
        images, metas = preprocess_for(config, items, opts.mode, opts.image_resolution)
        return Loaded(scene, order, np.asarray(images, np.float32), metas, indices)
    except Exception as error:  # noqa: BLE001 - a bad scene is reported in the index, never fatal
        return Loaded(scene, order, error=f"{type(error).__name__}: {error}")


def pipeline(scenes: list[tuple[int, Scene]], config, opts: BatchOptions):
    """The scenes decoded and preprocessed ahead of the consumer on ``opts.workers`` threads (grain)."""
    import grain

    dataset = grain.MapDataset.source(scenes).map(lambda item: load_scene(item[1], item[0], config, opts))
    read = grain.ReadOptions(num_threads=opts.workers, prefetch_buffer_size=opts.prefetch)
    return iter(dataset.to_iter_dataset(read))


class Forward:
    """The jitted forward over the local devices: ``B`` scenes of ``K`` frames per call, batch axis sharded."""

    def __init__(self, config, params, batch: int, frames: int):
        import jax
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        from vggt_jax.model.vggt import VGGT

        devices = jax.local_devices()
        self.mesh = jax.make_mesh(
            (len(devices),), ("scenes",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
        )
        self.batch, self.frames = batch, frames
        self.data = NamedSharding(self.mesh, P("scenes"))
        self.params = jax.device_put(params, NamedSharding(self.mesh, P()))
        self.dtype = np.float64 if config.dtype == "float64" else np.float32
        model = VGGT(config)
        self._fn = jax.jit(lambda p, images, mask: model.apply(p, images, None, mask))
        self.compiled: set[tuple[int, int]] = set()

    def __call__(self, images: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        import jax

        images = jax.device_put(images.astype(self.dtype), self.data)
        mask = jax.device_put(mask, self.data)
        out = jax.block_until_ready(self._fn(self.params, images, mask))
        return {k: np.asarray(v) for k, v in out.items()}


def assemble(group: list[Loaded], batch: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images [B, K, 3, H, W], frame_mask [B, K])``: scenes padded to K frames with copies of their last frame
    (masked) and the batch to B with copies of its first scene."""
    h, w = group[0].images.shape[-2:]
    images = np.empty((batch, frames, 3, h, w), np.float32)
    mask = np.zeros((batch, frames), bool)
    for b in range(batch):
        item = group[b] if b < len(group) else group[0]
        s = len(item.images)
        images[b, :s] = item.images
        images[b, s:] = item.images[-1]
        mask[b, :s] = True
    return images, mask


def run_batch(opts: BatchOptions, log: Callable[[str], None] = print) -> Summary:
    """Run the job for this process; returns its summary (also written to ``OUT/index/summary-<p>.json``)."""
    import jax

    from vggt_jax.inference.outputs import scene_outputs
    from vggt_jax.inference.predictor import Predictor, predictions_from_outputs

    opts.check()
    start = time.perf_counter()
    out = Path(opts.out).expanduser().absolute()
    scenes = read_scenes(opts.scenes)
    order = {s.id: k for k, s in enumerate(scenes)}
    process, count = jax.process_index(), jax.process_count()
    share = process_share(scenes, process, count)
    (out / SCENES).mkdir(parents=True, exist_ok=True)
    finished = index_lib.finished_rows(out)
    todo = [s for s in share if s.id not in finished]
    for scene in todo:  # leftovers of a killed run: partial folders, a folder whose row was never written
        for stale in (out / SCENES).glob(f".{scene.id}.partial*"):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(out / SCENES / scene.id, ignore_errors=True)
    summary = Summary(skipped=len(share) - len(todo))
    writer = index_lib.IndexWriter(out, process, count)
    rows = {s.id: finished[s.id] for s in share if s.id in finished}
    lock = threading.Lock()
    progress = _progress(len(share), summary.skipped, process, count, opts.quiet)

    def record(row: dict) -> None:
        with lock:
            writer.append(row)
            rows[row["id"]] = row
            if row["status"] == "done":
                summary.done += 1
            else:
                summary.failed += 1
            progress.update(1)

    try:
        if todo:
            predictor = Predictor.from_checkpoint(opts.checkpoint, dtype=opts.dtype, config=opts.config)
            batch = opts.scenes_per_device * jax.local_device_count()
            forward = Forward(predictor.config, predictor.params, batch, opts.frames)
            pool = concurrent.futures.ThreadPoolExecutor(opts.writers, thread_name_prefix="vggt-batch-writer")
            pending: collections.deque = collections.deque()
            groups: dict[tuple[int, int], list[Loaded]] = {}
            first_end: list[float] = []

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    record(pending.popleft().result())

            def run(group: list[Loaded]) -> None:
                images, mask = assemble(group, batch, opts.frames)
                key = images.shape[-2:]
                t = time.perf_counter()
                result = forward(images, mask)
                seconds = time.perf_counter() - t
                if key in forward.compiled:
                    summary.forward_s += seconds
                    summary.steady_forwards += 1
                else:
                    forward.compiled.add(key)
                    summary.compile_s += seconds
                    first_end.append(time.perf_counter())
                summary.forwards += 1
                for b, item in enumerate(group):
                    scene_out = scene_outputs(result, len(item.images), index=b)
                    pred = predictions_from_outputs(scene_out, item.images, item.metas)
                    pending.append(pool.submit(_write, out, item, pred, opts.outputs))
                drain(2 * opts.writers)

            for item in pipeline([(order[s.id], s) for s in todo], predictor.config, opts):
                if item.error is not None:
                    record(outputs_lib.failed_row(item.scene, item.order, item.error))
                    continue
                group = groups.setdefault(tuple(item.images.shape[-2:]), [])
                group.append(item)
                if len(group) == batch:
                    run(groups.pop(tuple(item.images.shape[-2:])))
            for key in list(groups):
                run(groups.pop(key))
            drain(0)
            pool.shutdown()
            if first_end:
                summary.steady_wall_s = max(0.0, time.perf_counter() - min(first_end))
        writer.finish(rows.values())
    finally:
        writer.close()
        progress.close()
    summary.wall_s = time.perf_counter() - start
    stats = dict(dataclasses.asdict(summary), busy=summary.busy, process=process, processes=count)
    (out / index_lib.INDEX / f"summary-{process:05d}.json").write_text(json.dumps(stats, indent=1) + "\n")
    log(
        f"process {process}/{count}: {summary.done} done, {summary.skipped} skipped (finished earlier), "
        f"{summary.failed} failed; {summary.forwards} forwards, busy {_percent(summary.busy)} of the steady state"
    )
    return summary


def _write(out: Path, item: Loaded, pred, outputs: Sequence[str]) -> dict:
    """Write one scene (a temporary folder renamed into place); its index row, or a failed row."""
    try:
        return outputs_lib.write_scene(out / SCENES, out, item, pred, outputs)
    except Exception as error:  # noqa: BLE001 - reported in the index
        return outputs_lib.failed_row(item.scene, item.order, f"{type(error).__name__}: {error}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _progress(total: int, initial: int, process: int, count: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"scenes (process {process}/{count})", unit="scene", disable=quiet)
