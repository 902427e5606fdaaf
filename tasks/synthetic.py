"""Building blocks of the embedded synthetic datasets (shapes on textured backgrounds).

Every task writes its synthetic data in the real on-disk format of its dataset (ImageFolder,
COCO JSON, VOC palette PNGs) through ``generate_once``, so the same loaders read real and
synthetic data. Generation is deterministic (seeded) and happens once per cache folder.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "hexagon", "ring")
# Distinct hues per class, so colour and shape both carry signal (texture varies per instance).
PALETTE = [
    (220, 50, 47),
    (38, 139, 210),
    (133, 153, 0),
    (211, 54, 130),
    (181, 137, 0),
    (42, 161, 152),
    (108, 113, 196),
    (203, 75, 22),
]


def cache_root() -> Path:
    """Where generated datasets live: ``$BENCH_CACHE`` or ``~/.cache/mobile-vision-bench``."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "mobile-vision-bench"))


def generate_once(name: str, version: int, write: Callable[[Path], None]) -> Path:
    """Return ``cache_root()/name``, generating it with ``write(tmp_dir)`` if absent or stale.

    A file lock serialises the writers; the data is written to a temporary folder and renamed into
    place in one step, so a killed generation never leaves a half-written dataset. Callers put the
    version in ``name``: a run reading one version is never disturbed by another process
    generating a newer one, and a complete folder is never deleted or renamed while readers use it.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    marker = target / ".complete"

    def complete() -> bool:
        return marker.is_file() and marker.read_text().strip() == str(version)

    if complete():  # the marker is written before the folder is renamed in: no lock needed to read
        return target
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():
            return target
        tmp = root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        (tmp / ".complete").write_text(str(version))
        if target.exists():  # incomplete or of another version: moved aside in one step, then deleted
            aside = root / f".{name}.old"
            shutil.rmtree(aside, ignore_errors=True)
            target.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        tmp.rename(target)
    return target


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A varied background: a colour gradient, stripes or blobs, and pixel noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(direction) * x / width + np.sin(direction) * y / height)[..., None]
    img = base + ramp * rng.uniform(-60, 60, size=3)
    kind = rng.integers(3)
    if kind == 0:  # stripes
        period = rng.uniform(6, 30)
        img += 18 * np.sin(2 * math.pi * (x if rng.random() < 0.5 else y) / period)[..., None]
    elif kind == 1:  # soft blobs
        for _ in range(4):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, width / 3)
            img += (rng.uniform(-40, 40, 3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None])
    img += rng.normal(0, 8, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def shape_polygon(kind: str, box: tuple[float, float, float, float], rotation: float = 0.0) -> list[tuple[float, float]]:
    """Outline of ``kind`` inscribed in ``box`` (x0, y0, x1, y1); circles and rings as 48-gons."""
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2

    def ring(n: int, radii: list[float], phase: float) -> list[tuple[float, float]]:
        pts = []
        for i in range(n):
            a = phase + rotation + 2 * math.pi * i / n
            r = radii[i % len(radii)]
            pts.append((cx + r * rx * math.cos(a), cy + r * ry * math.sin(a)))
        return pts

    if kind in ("circle", "ring"):
        return ring(48, [1.0], 0.0)
    if kind == "square":
        return ring(4, [1.0], math.pi / 4)
    if kind == "triangle":
        return ring(3, [1.0], -math.pi / 2)
    if kind == "diamond":
        return ring(4, [1.0], 0.0)
    if kind == "hexagon":
        return ring(6, [1.0], 0.0)
    if kind == "star":
        return ring(10, [1.0, 0.45], -math.pi / 2)
    if kind == "cross":
        return ring(12, [1.0, 0.45, 0.45], math.pi / 12)
    raise ValueError(f"unknown shape {kind!r}")


def draw_shape(
    image: Image.Image,
    kind: str,
    box: tuple[float, float, float, float],
    color: tuple[int, int, int],
    rng: np.random.Generator,
    mask: Image.Image | None = None,
    mask_value: int = 1,
) -> tuple[float, float, float, float]:
    """Draw a textured shape on ``image`` (and its silhouette with ``mask_value`` on ``mask``).

    Returns the tight box (x0, y0, x1, y1) of the drawn outline, before clipping to the image.
    """
    polygon = shape_polygon(kind, box, rotation=float(rng.uniform(-0.3, 0.3)))
    jitter = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in color)
    silhouette = Image.new("L", image.size, 0)
    ImageDraw.Draw(silhouette).polygon(polygon, fill=255)
    if kind == "ring":
        x0, y0, x1, y1 = box
        inset = 0.3 * min(x1 - x0, y1 - y0)
        inner = shape_polygon("circle", (x0 + inset, y0 + inset, x1 - inset, y1 - inset))
        ImageDraw.Draw(silhouette).polygon(inner, fill=0)
    # Texture: the class colour with a per-instance stripe pattern, so colour alone is not enough.
    w, h = image.size
    yy, xx = np.mgrid[0:h, 0:w]
    period = float(rng.uniform(4, 10))
    stripes = (np.sin((xx + yy * float(rng.uniform(-1, 1))) * 2 * math.pi / period) > 0)[..., None]
    texture = np.where(stripes, np.array(jitter), np.array(jitter) * 0.7).astype(np.uint8)
    image.paste(Image.fromarray(texture, "RGB"), (0, 0), silhouette)
    if mask is not None:
        mask.paste(mask_value, (0, 0), silhouette)
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    return min(xs), min(ys), max(xs), max(ys)
