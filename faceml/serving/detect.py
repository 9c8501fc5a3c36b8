"""Face detection that ships inside a registry package: OpenCV 4.x Haar cascades (offline).

``opencv-python-headless`` 4.x carries its Haar cascade XML files in the wheel
(``cv2.data.haarcascades``; 5.x ships none), so nothing is downloaded at run time.

Choice, measured (``python bench/predict.py --compare-detectors`` re-runs the comparison)
----------------------------------------------------------------------------------------
On the 5 portraits of ``../shared/data/photos`` (1067–1600 px, one person each) plus
``skimage.data.astronaut()`` (512 px), grayscale, downscaled to the long side given, on the 2
shared cores *with other work running* (load average 5–6: times are noisy, detection only,
per photo, median and max over the 6 photos):

==========================================  =================================  ============
detector (long side, scaleFactor/neighbours)  photos with exactly one face       ms med (max)
==========================================  =================================  ============
Haar ``frontalface_default`` 256 px 1.1/5     5 of 6 (misses the bearded man     52 (72)
                                              with glasses)
Haar ``frontalface_default`` 320 px 1.1/5     5 of 6 (same miss)                 67 (120)
Haar ``frontalface_default`` 640 px 1.1/5     5 of 6 (same miss)                 220 (508)
Haar ``frontalface_default`` 320 px 1.05/3    6 of 6                             156 (277)
**Haar ``frontalface_alt`` 256 px 1.1/3**     **6 of 6**  (chosen)               **73 (131)**
Haar ``frontalface_alt`` 320 px 1.1/3         6 of 6                             115 (197)
Haar ``frontalface_alt2`` 256 px 1.1/3        6 of 6 (but 5 of 6 at 320 px)      61 (96)
scikit-image LBP cascade 256 px 1.2           2 of 6 (extra boxes on 3, a miss)  141 (221)
``FaceDetector().detect`` (the whole call)    6 of 6                             59 (131)
==========================================  =================================  ============

``frontalface_alt`` is the one cascade that finds all six at every resolution tried (256,
320, and 640 px with 3 neighbours); 256 px is the cheapest resolution that does. Histogram
equalisation before detection *lost* the hard photo for every cascade, so it is not used. No
false box on 19 of scikit-image's other sample images (coffee, cat, rocket, textures,
text…; the cameraman, a small face in three-quarter view, is not found either).
With ``max_side`` = 256 a face must be at least the cascade's 20 px window, about 8 % of the
photo's long side (a 125 px face in a 1600 px photo). If that pass finds nothing, a second
pass at 512 px looks again (faces down to about 4 %); it costs about 4× more, and only on
photos where the first pass came back empty.

Score and weak flag
-------------------
``score`` is the number of neighbours: how many raw detections (positions and scales) were
merged into the box (``detectMultiScale2``). ``frontalface_alt``'s ``levelWeights`` from
``detectMultiScale3`` are nearly constant (107.5–109.3 on every face above) and tell nothing.
Measured: the hard photo (bearded man with glasses) gets 11 neighbours, the other photos
32–86; on 400 random UTKFace chips it finds 393, with 10th / 50th / 90th percentiles of
15 / 43 / 74 neighbours. A box with fewer than ``weak_below`` = 15 neighbours (weaker than
nine in ten training faces) is flagged ``weak``: the hard photo is, correctly, a weak find.

Crop box (margin)
-----------------
The model was trained on UTKFace "aligned & cropped" chips, which are tight: running this
detector on 400 random chips (padded so the whole face is visible) gives a box whose side is
1.03× the chip side (10th–90th percentile 0.95–1.12), centred horizontally (0.50) and *above*
the chip's centre (0.41 of the chip height). So the crop given to a model is the detector's
box scaled by ``crop_scale`` = 1.0 and moved down by ``crop_shift`` = 0.09 of its side, which
reproduces a UTKFace chip (chin at the bottom, little hair). The crop is square and is moved
(not squashed) to lie inside the image; when the image is smaller than the crop, the crop
shrinks to the image's shorter side. Every box is in original-image pixels, ``(x, y, w, h)``.

Small copies and turned photos
------------------------------
``detect(img, frame=(W, H))`` takes a reduced copy of a photo (the Predict path hands it the
photo decoded at 1/8 scale, see :class:`faceml.serving.predict.Photo`) and gives boxes in the
``W×H`` photo's pixels: the cascade only ever sees a copy of at most 512 px, so detecting on a
copy costs the same and is as good as detecting on the full photo. :meth:`FaceDetector.find`
is ``detect`` that, before giving up, looks again with the photo turned by 90°, 180° and
270° (counter-clockwise, as :meth:`PIL.Image.Image.rotate`): a phone photo taken sideways
without an EXIF orientation. Its detections carry the ``turn`` they were found at, and their
boxes are in the turned photo's pixels (``H×W`` for 90° and 270°).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from faceml.errors import FaceMLError

CASCADE = "haarcascade_frontalface_alt.xml"
MAX_SIDE = 256
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 3
WEAK_BELOW = 15
CROP_SCALE = 1.0
CROP_SHIFT = 0.09
TURNS = (90, 180, 270)  # tried in this order by FaceDetector.find when nothing is found upright
TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
             270: Image.Transpose.ROTATE_270}


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # the crop a model gets: square, inside the image
    raw_box: tuple[int, int, int, int]  # the detector's own box, original pixels
    score: float  # neighbours merged into the box
    weak: bool
    turn: int = 0  # degrees counter-clockwise the photo was turned to find it (boxes: turned)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def square_box(cx: float, cy: float, side: float, width: int,
               height: int) -> tuple[int, int, int, int]:
    """A square box of ``side`` centred on ``(cx, cy)``, moved to lie inside the image (and
    shrunk to the image's shorter side when it cannot fit)."""
    side = int(round(min(max(side, 1.0), width, height)))
    x = int(round(cx - side / 2))
    y = int(round(cy - side / 2))
    x = min(max(x, 0), width - side)
    y = min(max(y, 0), height - side)
    return x, y, side, side


def clip_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """A user's ``(x, y, w, h)`` clipped to the image; at least 1×1 pixel."""
    try:
        x, y, w, h = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        raise FaceMLError(f"a box is four numbers x, y, w, h; not {box!r}") from None
    x = min(max(x, 0), width - 1)
    y = min(max(y, 0), height - 1)
    w = max(1, min(w, width - x))
    h = max(1, min(h, height - y))
    return x, y, w, h


class FaceDetector:
    """OpenCV Haar cascade on a downscaled grayscale copy; boxes mapped back to the original.

    Thread-safe (a lock around the cascade): one detector can serve every session of the app.
    """

    def __init__(self, cascade: str = CASCADE, max_side: int = MAX_SIDE,
                 scale_factor: float = SCALE_FACTOR, min_neighbors: int = MIN_NEIGHBORS,
                 weak_below: float = WEAK_BELOW, crop_scale: float = CROP_SCALE,
                 crop_shift: float = CROP_SHIFT, second_pass: bool = True):
        try:
            import cv2
        except ImportError:
            raise FaceMLError("face detection needs opencv-python-headless 4.x "
                              "(pip install -r requirements.txt)") from None
        path = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if not path:
            raise FaceMLError("this OpenCV has no bundled Haar cascades (OpenCV 5.x ships none); "
                              "install opencv-python-headless 4.x")
        self._cv2 = cv2
        self.cascade = cv2.CascadeClassifier(str(path) + cascade)
        if self.cascade.empty():
            raise FaceMLError(f"could not load the face detector {cascade} from {path}")
        self.name = cascade
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.weak_below = float(weak_below)
        self.crop_scale = float(crop_scale)
        self.crop_shift = float(crop_shift)
        self.second_pass = second_pass
        self._lock = threading.Lock()

    @staticmethod
    def _gray(img: Image.Image | np.ndarray) -> Image.Image:
        if isinstance(img, np.ndarray):
            arr = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
            img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
        return img if img.mode == "L" else img.convert("L")

    def _pass(self, gray: Image.Image, max_side: int, frame: tuple[int, int]):
        w, h = frame
        gw, gh = gray.size
        f = min(1.0, max_side / max(gw, gh))
        small = gray if f == 1.0 else gray.resize((max(1, round(gw * f)), max(1, round(gh * f))),
                                                  Image.Resampling.BILINEAR, reducing_gap=2.0)
        arr = np.asarray(small)
        if min(arr.shape) < 20:
            return [], f
        with self._lock:
            boxes, neighbours = self.cascade.detectMultiScale2(
                arr, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors)
        fx, fy = w / small.size[0], h / small.size[1]  # the copy's pixels -> the frame's
        out = [((x * fx, y * fy, bw * fx, bh * fy), float(n))
               for (x, y, bw, bh), n in zip(np.reshape(boxes, (-1, 4)), np.ravel(neighbours))]
        return out, f

    def detect(self, img: Image.Image | np.ndarray,
               frame: tuple[int, int] | None = None) -> list[Detection]:
        """Faces in ``img`` (PIL image or uint8 array), strongest first; ``[]`` when none.

        ``frame``: the ``(width, height)`` of the photo ``img`` is a reduced copy of; boxes are
        then in that photo's pixels (default: ``img``'s own)."""
        gray = self._gray(img)
        width, height = frame = tuple(int(v) for v in (frame or gray.size))
        found, f = self._pass(gray, self.max_side, frame)
        if not found and self.second_pass and f < 1.0:
            found, _ = self._pass(gray, self.max_side * 2, frame)
        dets = []
        for (x, y, w, h), n in sorted(found, key=lambda t: -t[1]):
            side = max(w, h) * self.crop_scale
            cx, cy = x + w / 2, y + h / 2 + self.crop_shift * side
            raw = clip_box((x, y, w, h), width, height)
            dets.append(Detection(square_box(cx, cy, side, width, height), raw, n,
                                  n < self.weak_below))
        return dets

    def find(self, img: Image.Image | np.ndarray, frame: tuple[int, int] | None = None,
             turns: tuple[int, ...] = TURNS) -> list[Detection]:
        """:meth:`detect`, and when it finds nothing, the same with the photo turned by each of
        ``turns`` (degrees counter-clockwise) until one finds a face; the detections carry
        their ``turn`` and boxes in the turned photo's pixels."""
        gray = self._gray(img)
        frame = tuple(int(v) for v in (frame or gray.size))
        dets = self.detect(gray, frame)
        for turn in () if dets else turns:
            side = frame[::-1] if turn in (90, 270) else frame
            dets = self.detect(gray.transpose(TRANSPOSE[turn]), side)
            if dets:
                for d in dets:
                    d.turn = turn
                break
        return dets

    def describe(self) -> str:
        return (f"OpenCV {self._cv2.__version__} Haar {self.name} at ≤{self.max_side} px "
                f"(scale {self.scale_factor}, {self.min_neighbors} neighbours; weak below "
                f"{self.weak_below:g})")
