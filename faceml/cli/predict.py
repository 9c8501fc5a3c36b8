"""``python -m faceml predict IMAGE… [--model FILE.keras | --run RUN_ID] [--json]``"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from faceml.errors import DataError, FaceMLError


def add_arguments(s) -> None:
    s.description = ("Detect faces (OpenCV Haar cascade) and answer every head of a model, "
                     "with the model's own preprocessing.")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, WebP, GIF or BMP")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, metavar="FILE.keras", help="a FaceML model file")
    g.add_argument("--run", default=None, metavar="RUN_ID", help="a run's best model")
    s.add_argument("--whole", action="store_true",
                   help="when no face is found, answer for the whole image")
    s.add_argument("--json", action="store_true",
                   help="one JSON line per image: {image, faces: [...]}")


def run(a) -> int:
    from faceml.serving.detect import FaceDetector
    from faceml.serving.predict import load_predictor, predict_box, predict_faces, read_image_file

    images = [(str(p), read_image_file(p)) for p in a.images]  # bad input fails before Keras
    predictor = load_predictor(a.model, a.run)
    detector = FaceDetector()
    for name, img in images:
        faces = predict_faces(img, predictor, detector)
        if not faces and a.whole:
            try:
                faces = [predict_box(img, predictor, None)]
            except FaceMLError as e:
                raise DataError(f"{Path(name).name}: {e}") from None
        if a.json:
            print(json.dumps({"image": name, "width": img.width, "height": img.height,
                              "model": predictor.name,
                              "faces": [f.to_dict() for f in faces]}))
            continue
        turned = faces[0].turn if faces else 0
        print(f"{name}: {len(faces)} face(s)" + ("" if faces else
              " — none found, upright or turned; --whole answers for the whole image")
              + (f" (found with the photo turned {turned}° counter-clockwise; boxes are in "
                 "the turned photo)" if turned else ""))
        for i, f in enumerate(faces, 1):
            x, y, w, h = f.box
            score = ("" if f.score is None else
                     f", score {f.score:g}" + (" (weak)" if f.weak else ""))
            print(f"  face {i} at x={x} y={y} {w}×{h}{score}: "
                  + "; ".join(ans.text() for ans in f.heads.values()))
            for wmsg in f.warnings:
                print(f"    warning: {wmsg}")
    sys.stdout.flush()
    return 0
