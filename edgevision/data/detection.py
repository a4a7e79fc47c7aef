"""The demo detection data set: handwritten digits pasted onto real photos, written as COCO splits.

Everything comes from files scikit-learn installs (no download): the backgrounds are crops of its two
sample photos (`load_sample_images()`: china.jpg and flower.jpg, 427×640), the objects are its 8×8
handwritten digits (`load_digits()`, labels "0".."9"). Each image is `image_size` (H×W, 240×320 by
default: not square, so the letterbox matters) with 1–6 digits of varied size and ink colour, some
partly overlapping.

Held out, twice over:
- digits: the same seeded stratified train/val/test split of the 1,797 digit samples as
  `edgevision.data.digits` (same fractions and seed give the same indices), so no digit sample pasted
  into a val or test image was ever pasted into a training image;
- backgrounds: each photo is cut into three disjoint regions — train crops from the left 60 % of the
  columns (full height), val from the right 40 % × top half, test from the right 40 % × bottom half.
  The full-height train band sees every kind of content each photo has (sky, pagoda, lake, trees;
  bokeh, the dahlia's centre and petals, the second flower), so the detector meets no background kind
  for the first time in test; the right-hand blocks are the largest 4:3-friendly pieces left (about 213×256
  px each). Crop sizes are drawn from the same range in every split (capped by the smallest region),
  so the backgrounds' upscale factor, hence their blur, is the same everywhere.

Each split dir holds `images/000000.png ...` and `annotations.json` (COCO: boxes [x, y, w, h] in
pixels, tight around the digit's visible ink; category_id = class index + 1; `area` = w·h). Every
image and annotation entry also records its provenance (photo, crop, flip; digit sample index), and
`root/detection.json` stamps the settings: a second call with the same settings reuses the files.

The same painting gives semantic segmentation for free: each split also holds `masks/000000.png`
(uint8, 0 background, k + 1 digit k, per pixel of the same visible ink the boxes are tight around) and
`labels.txt` ("background", "0".."9"), the layout `edgevision.data.masks.MaskFolder` reads.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._optional import opencv
from ..errors import ConfigError

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

LABELS = tuple(str(d) for d in range(10))
SPLITS = ("train", "val", "test")
ANNOTATIONS = "annotations.json"
LABELS_FILE = "labels.txt"  # the segmentation labels, one per line (line k: class id k)
_STAMP = "detection.json"
_VERSION = 3  # 2: vertical train band (left 60 %), colour distance; 3: + masks/ (same images)
MASKS = "masks"  # per split: masks/000000.png, 0 = background, k + 1 = digit k (see `edgevision.data.masks`)
SEGMENTATION_LABELS = ("background", *LABELS)
#: Background regions as (top, bottom, left, right) fractions of each photo; disjoint across splits.
REGIONS = {
    "train": (0.0, 1.0, 0.0, 0.6),
    "val": (0.0, 0.5, 0.6, 1.0),
    "test": (0.5, 1.0, 0.6, 1.0),
}
_INK_THRESHOLD = 0.3  # alpha at or above this is visible ink: it defines the box
_MIN_VISIBLE = 0.7  # an occluded digit keeps at least this share of its ink
_MIN_CONTRAST = 80.0  # luma levels between the ink and the mean of the background under it
_MIN_DISTANCE = 130.0  # BGR distance from 95 % of the background pixels under the ink
_COLOUR_TRIES = 32
_LUMA = np.array([0.114, 0.587, 0.299], np.float32)  # BGR weights


@dataclass(frozen=True)
class DetectionSplits:
    """Where the generated splits live; each split dir holds images/ and annotations.json."""

    root: Path
    train: Path
    val: Path  # the selection split (checkpoints, thresholds, parity)
    test: Path  # the held-out split every published mAP is measured on
    labels: tuple[str, ...] = LABELS


@dataclass(frozen=True)
class _Settings:
    seed: int
    image_size: tuple[int, int]
    counts: tuple[int, int, int]
    objects_per_image: tuple[int, int]
    object_height: tuple[int, int]
    max_iou: float
    val_fraction: float
    test_fraction: float
    version: int = _VERSION


def make_detection_dataset(
    root: str | Path,
    *,
    seed: int = 0,
    image_size: tuple[int, int] = (240, 320),
    counts: tuple[int, int, int] = (1500, 250, 300),
    objects_per_image: tuple[int, int] = (1, 6),
    object_height: tuple[int, int] = (24, 80),
    max_iou: float = 0.3,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> DetectionSplits:
    """Write (or reuse, when written with the same settings) root/{train,val,test}/ as COCO splits.

    `counts` is (train, val, test) images; `object_height` the digits' ink height range in pixels;
    `max_iou` the most two boxes in one image may overlap. `val_fraction`/`test_fraction` split the
    digit samples (as `make_digits_folder` does). A digit that finds no place keeping `max_iou` in 30
    tries is left out, so a crowded image may hold fewer than drawn. Written into a hidden temporary dir
    under `root` and moved into place only when complete, stamp last, so an interrupted run is redone.
    """
    settings = _validated(seed, image_size, counts, objects_per_image, object_height, max_iou,
                          val_fraction, test_fraction)
    root = Path(root)
    splits = DetectionSplits(root=root, train=root / "train", val=root / "val", test=root / "test")
    if _is_current(root, settings):
        return splits
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / ".lock"):  # two processes asking for the same root: one writes, the other reuses
        if _is_current(root, settings):
            return splits
        for leftover in root.glob(".building-*"):  # a killed earlier run
            shutil.rmtree(leftover, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
        try:
            _generate(building, settings)
            (root / _STAMP).unlink(missing_ok=True)  # no stamp while the splits are swapped
            for part in SPLITS:
                shutil.rmtree(root / part, ignore_errors=True)
                (building / part).rename(root / part)
            (building / _STAMP).rename(root / _STAMP)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return splits


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory file lock where the OS has one (fcntl: Linux, macOS); a no-op elsewhere."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _validated(seed, image_size, counts, objects_per_image, object_height, max_iou, val_fraction,
               test_fraction) -> _Settings:
    height, width = (int(v) for v in image_size)
    if height < 32 or width < 32:
        raise ConfigError(f"image_size {tuple(image_size)} is too small: use at least (32, 32), e.g. (240, 320).")
    if len(counts) != 3 or min(counts) < 1:
        raise ConfigError(f"counts {tuple(counts)} must be three positive image counts (train, val, test).")
    low, high = objects_per_image
    if not 1 <= low <= high:
        raise ConfigError(f"objects_per_image {tuple(objects_per_image)} must be (min, max) with 1 <= min <= max.")
    short, tall = object_height
    if not 8 <= short <= tall <= height // 2:
        raise ConfigError(
            f"object_height {tuple(object_height)} must be (min, max) pixels with 8 <= min <= max <= half the "
            f"image height ({height // 2})."
        )
    if not 0 <= max_iou < 1:
        raise ConfigError(f"max_iou ({max_iou}) must lie in [0, 1), e.g. 0.3.")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must each lie in (0, 1) and sum below 1."
        )
    return _Settings(seed=int(seed), image_size=(height, width), counts=tuple(int(c) for c in counts),
                     objects_per_image=(int(low), int(high)), object_height=(int(short), int(tall)),
                     max_iou=float(max_iou), val_fraction=float(val_fraction), test_fraction=float(test_fraction))


def _stamp(settings: _Settings) -> dict:
    return json.loads(json.dumps(asdict(settings)))  # tuples → lists, as read back from the file


def _is_current(root: Path, settings: _Settings) -> bool:
    stamp = root / _STAMP
    try:
        current = json.loads(stamp.read_text())["settings"] == _stamp(settings)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return current and all((root / part / ANNOTATIONS).is_file() for part in SPLITS)


def digit_split_indices(targets: np.ndarray, *, seed: int, val_fraction: float, test_fraction: float
                        ) -> dict[str, np.ndarray]:
    """The stratified digit-sample split of `make_digits_folder` (same arguments → same indices)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(targets))
    rest, test = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=targets)
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=targets[rest]
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _photos() -> list[tuple[str, np.ndarray]]:
    """scikit-learn's two sample photos as (name, BGR uint8)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    return [(Path(name).name, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            for name, image in zip(photos.filenames, photos.images, strict=True)]


def _generate(out: Path, settings: _Settings) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pools = digit_split_indices(digits.target, seed=settings.seed, val_fraction=settings.val_fraction,
                                test_fraction=settings.test_fraction)
    photos = _photos()
    crop_range = _crop_heights(photos, settings.image_size)
    regions_px = {}
    with _png_writer() as write:
        for number, part in enumerate(SPLITS):
            regions_px[part] = _generate_split(out, settings, number, digits, pools[part], photos, crop_range, write)
    (out / _STAMP).write_text(json.dumps({"settings": _stamp(settings), "background_regions_xyxy": regions_px}))


def _generate_split(out: Path, settings: _Settings, number: int, digits, pool: np.ndarray, photos, crop_range,
                    write: Callable[[Path, np.ndarray], None]) -> dict[str, list[int]]:
    """Paint and write one split; returns its background region in each photo's pixels."""
    part = SPLITS[number]
    height, width = settings.image_size
    rng = np.random.default_rng([settings.seed, number])
    order = rng.permutation(pool)  # cycle through the split's digits so each is used evenly
    painter = _Painter(settings, digits.images, digits.target, order, rng)
    images, annotations = [], []
    (out / part / "images").mkdir(parents=True)
    (out / part / MASKS).mkdir()
    (out / part / LABELS_FILE).write_text("\n".join(SEGMENTATION_LABELS) + "\n")
    for index in range(settings.counts[number]):
        name, photo = photos[int(rng.integers(len(photos)))]
        background, crop, flipped = _background(photo, REGIONS[part], crop_range, settings.image_size, rng)
        image, objects, mask = painter.paint(background)
        file_name = f"{index:06d}.png"
        write(out / part / "images" / file_name, image)
        write(out / part / MASKS / file_name, mask)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                       "background": {"photo": name, "crop_xywh": crop, "flipped": flipped}})
        for x0, y0, x1, y1, label, sample in objects:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": label + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                "digit_index": sample,
            })
    regions = {name: _region_pixels(photo.shape, REGIONS[part]) for name, photo in photos}
    coco = {
        "info": {"description": f"edgevision generated detection data, {part} split",
                 "background_regions_xyxy": regions, "digit_indices": pool.tolist()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": label} for k, label in enumerate(LABELS)],
    }
    (out / part / ANNOTATIONS).write_text(json.dumps(coco))
    return regions


@contextmanager
def _png_writer(*, threads: int = 2, pending: int = 16) -> Iterator[Callable[[Path, np.ndarray], None]]:
    """write(path, image), encoding PNGs on `threads` threads (OpenCV releases the GIL) while the caller paints.

    At most `pending` images wait in memory; a failed write raises at the next write or on leaving.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    queue: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edgevision-png") as pool:
        def write(path: Path, image: np.ndarray) -> None:
            if len(queue) >= pending:
                queue.popleft().result()
            queue.append(pool.submit(_write_png, path, image))

        try:
            yield write
            while queue:
                queue.popleft().result()
        finally:
            for future in queue:
                future.cancel()


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"Could not write {path}: check the disk has space and the folder is writable.")


def _region_pixels(shape: tuple[int, ...], region: tuple[float, float, float, float]) -> list[int]:
    """A region's [x0, y0, x1, y1] in a photo's pixels (end exclusive)."""
    top, bottom, left, right = region
    height, width = shape[:2]
    return [round(left * width), round(top * height), round(right * width), round(bottom * height)]


def _crop_heights(photos: list[tuple[str, np.ndarray]], image_size: tuple[int, int]) -> tuple[int, int]:
    """(min, max) crop height shared by every split: the largest crop of image_size's aspect that fits the
    smallest region, down to 60 % of it."""
    aspect = image_size[1] / image_size[0]
    fits = []
    for _, photo in photos:
        for region in REGIONS.values():
            x0, y0, x1, y1 = _region_pixels(photo.shape, region)
            fits.append(min(y1 - y0, int((x1 - x0) / aspect)))
    largest = min(fits)
    return max(8, int(largest * 0.6)), largest


def _background(photo, region, crop_range, image_size, rng) -> tuple[np.ndarray, list[int], bool]:
    """A random crop of `region` (aspect of image_size), resized to image_size and maybe mirrored."""
    height, width = image_size
    x0, y0, x1, y1 = _region_pixels(photo.shape, region)
    crop_h = int(rng.integers(crop_range[0], crop_range[1] + 1))
    crop_w = min(x1 - x0, round(crop_h * width / height))
    top = y0 + int(rng.integers(0, y1 - y0 - crop_h + 1))
    left = x0 + int(rng.integers(0, x1 - x0 - crop_w + 1))
    crop = photo[top:top + crop_h, left:left + crop_w]
    background = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
    flipped = bool(rng.random() < 0.5)
    if flipped:
        background = background[:, ::-1]
    return np.ascontiguousarray(background), [left, top, crop_w, crop_h], flipped


class _Painter:
    """Pastes digits onto a background: alpha from the digit's ink, colour chosen against the background."""

    def __init__(self, settings: _Settings, images: np.ndarray, targets: np.ndarray, order: np.ndarray, rng):
        self.settings = settings
        self.images = images
        self.targets = targets
        self.order = order
        self.next = 0
        self.rng = rng

    def _take_digit(self) -> int:
        sample = int(self.order[self.next % len(self.order)])
        self.next += 1
        return sample

    def _alpha(self, sample: int) -> np.ndarray:
        """The digit's ink as a 0..1 alpha patch, scaled so its ink is the drawn height."""
        ink = self.images[sample].astype(np.float32) / 16.0
        rows = np.flatnonzero(ink.max(axis=1) >= 0.25)
        ink_rows = max(1, rows[-1] - rows[0] + 1) if rows.size else 8
        low, high = self.settings.object_height
        cell_h = self.rng.uniform(low, high) * 8 / ink_rows
        cell_w = cell_h * self.rng.uniform(0.8, 1.25)  # a little stretch: handwriting varies in width
        padded = np.pad(ink, 1)  # zero border: the upscaled stroke fades out instead of being cut
        size = (max(3, round(cell_w * 10 / 8)), max(3, round(cell_h * 10 / 8)))
        alpha = cv2.resize(padded, size, interpolation=cv2.INTER_CUBIC)
        return np.clip((alpha - 0.15) / 0.45, 0.0, 1.0)  # firm strokes, soft edges

    def _ink_colour(self, under_ink: np.ndarray) -> np.ndarray:
        """A random BGR colour that stands out from (nearly) every background pixel under the ink.

        Judged per pixel, not on the mean: a digit half on a bright petal and half on dark leaves needs a
        colour far from both (the 5th-percentile distance), plus brightness contrast to the mean.
        """
        pixels = under_ink.reshape(-1, 3)[:: max(1, len(under_ink) // 128)]
        colours = self.rng.uniform(0, 255, size=(_COLOUR_TRIES, 3)).astype(np.float32)
        squared = (colours**2).sum(axis=1)[:, None] + (pixels**2).sum(axis=1)[None, :] - 2 * colours @ pixels.T
        fifth = len(pixels) // 20  # the 5th-percentile pixel's distance
        nearly_all = np.sqrt(np.partition(squared, fifth, axis=1)[:, fifth])
        brightness = np.abs(colours @ _LUMA - float(pixels.mean(axis=0) @ _LUMA))
        good = np.flatnonzero((nearly_all >= _MIN_DISTANCE) & (brightness >= _MIN_CONTRAST))
        return colours[good[0]] if good.size else colours[int(np.argmax(nearly_all + brightness))]

    def paint(self, background: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int, int, int]], np.ndarray]:
        """(image, [(x0, y0, x1, y1, class, digit sample)], mask) with boxes tight around each digit's visible ink.

        The mask (H×W uint8) marks the same visible ink per pixel: 0 background, class + 1 where the
        top-most digit's remaining alpha is at least the ink threshold.
        """
        canvas = background.astype(np.float32)
        low, high = self.settings.objects_per_image
        placed: list[_Pasted] = []
        for _ in range(int(self.rng.integers(low, high + 1))):
            sample = self._take_digit()
            alpha = self._alpha(sample)
            for _attempt in range(30):
                candidate = _Pasted.place(alpha, canvas.shape[:2], self.rng, int(self.targets[sample]), sample)
                occluded = None if candidate is None else self._fits(candidate, placed)
                if occluded is None:
                    continue
                for earlier, seen in occluded.items():
                    placed[earlier].visible = seen
                placed.append(candidate)
                window = canvas[candidate.window]
                mask = candidate.alpha[..., None]
                colour = self._ink_colour(window[candidate.alpha >= _INK_THRESHOLD])
                window[:] = window * (1 - mask) + colour * mask
                break
        objects = [(*p.box(), p.label, p.sample) for p in placed]
        mask = np.zeros(canvas.shape[:2], np.uint8)
        for pasted in placed:  # painting order: a later digit's ink is on top
            window = mask[pasted.window]
            window[pasted.visible >= _INK_THRESHOLD] = pasted.label + 1
        return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), objects, mask

    def _fits(self, candidate: _Pasted, placed: list[_Pasted]) -> dict[int, np.ndarray] | None:
        """The earlier digits' new visible alphas if the candidate may go on top of them, else None.

        It may when every pair of boxes overlaps by at most max_iou and every earlier digit keeps
        _MIN_VISIBLE of its ink.
        """
        occluded = {}
        for number, earlier in enumerate(placed):
            seen = earlier.under(candidate)
            if seen is not None:
                if (seen >= _INK_THRESHOLD).sum() < _MIN_VISIBLE * earlier.ink:
                    return None
                occluded[number] = seen
        boxes = [p.box(occluded.get(n)) for n, p in enumerate(placed)] + [candidate.box()]
        if any(b is None for b in boxes):
            return None
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                if _iou(a, b) > self.settings.max_iou:
                    return None
        return occluded


@dataclass
class _Pasted:
    """One digit on the canvas: its alpha patch (clipped to the image) at (top, left)."""

    alpha: np.ndarray
    top: int
    left: int
    label: int
    sample: int
    visible: np.ndarray  # alpha after the digits painted later
    ink: int  # pixels of ink before any occlusion

    @classmethod
    def place(cls, alpha: np.ndarray, image_size: tuple[int, int], rng, label: int, sample: int) -> _Pasted | None:
        """The patch at a random position with all of its ink inside the image."""
        height, width = image_size
        ys, xs = np.nonzero(alpha >= _INK_THRESHOLD)
        if ys.size == 0:
            return None
        ink_top, ink_left = int(ys.min()), int(xs.min())
        ink_h, ink_w = int(ys.max()) - ink_top + 1, int(xs.max()) - ink_left + 1
        if ink_h > height or ink_w > width:
            return None
        top = int(rng.integers(0, height - ink_h + 1)) - ink_top  # where the patch's corner goes
        left = int(rng.integers(0, width - ink_w + 1)) - ink_left
        py0, px0 = max(0, -top), max(0, -left)
        py1, px1 = min(alpha.shape[0], height - top), min(alpha.shape[1], width - left)
        clipped = np.ascontiguousarray(alpha[py0:py1, px0:px1])
        return cls(clipped, top + py0, left + px0, label, sample, clipped, int(ys.size))

    @property
    def window(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.alpha.shape[0]), slice(self.left, self.left + self.alpha.shape[1])

    def under(self, cover: _Pasted) -> np.ndarray | None:
        """This digit's visible alpha once `cover` is painted over it, or None if they do not touch."""
        y0, x0 = max(self.top, cover.top), max(self.left, cover.left)
        y1 = min(self.top + self.alpha.shape[0], cover.top + cover.alpha.shape[0])
        x1 = min(self.left + self.alpha.shape[1], cover.left + cover.alpha.shape[1])
        if y0 >= y1 or x0 >= x1:
            return None
        seen = self.visible.copy()
        seen[y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left] *= (
            1 - cover.alpha[y0 - cover.top:y1 - cover.top, x0 - cover.left:x1 - cover.left]
        )
        return seen

    def box(self, visible: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) in image pixels, end exclusive, around the visible ink."""
        ys, xs = np.nonzero((self.visible if visible is None else visible) >= _INK_THRESHOLD)
        if ys.size == 0:
            return None
        return (self.left + int(xs.min()), self.top + int(ys.min()),
                self.left + int(xs.max()) + 1, self.top + int(ys.max()) + 1)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0
