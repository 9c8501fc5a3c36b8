"""Markdown shared by the evaluation report (:mod:`faceml.evaluation.report`) and the model card
(:mod:`faceml.serving.bundle`): one table writer, one number format, and the ethics texts both end
with.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ETHICS_AND_LIMITS", "MODEL_CARD_ETHICS", "cell_text", "md_table", "model_card_ethics"]


def cell_text(v, digits: int = 4, thousands: bool = True) -> str:
    """A table cell: ``—`` for None or NaN (not applicable), floats with ``digits`` decimals,
    whole numbers with thousands separators unless ``thousands`` is False."""
    if v is None:
        return "—"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return f"{int(v):,}" if thousands else str(int(v))
    if isinstance(v, float | np.floating):
        return "—" if math.isnan(float(v)) else f"{float(v):.{digits}f}"
    return str(v)


def md_table(df: pd.DataFrame, digits: int = 4, thousands: bool = True) -> str:
    """``df`` as a Markdown table (``|`` in a cell escaped, line breaks flattened)."""
    def cell(v) -> str:
        return cell_text(v, digits, thousands).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cell(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


# --- ethics: the report's sections (heading, text), and the model card's closing Markdown -------

ETHICS_AND_LIMITS: list[tuple[str, str]] = [
    ("Dataset bias",
     "The numbers above hold for the faces of this dataset only. UTKFace (about 20k faces, "
     "ages 0-116) has many more White faces than any other group and few old people; its "
     "labels were estimated by an algorithm and checked by an annotator. FairFace (about 108k "
     "faces from Flickr) was balanced over 7 race groups, but its age, gender and race labels "
     "are crowd-workers' judgements. CelebA (about 200k photos of about 10k celebrities) is "
     "mostly young, light-skinned and professionally photographed, and several of its 40 "
     "attributes are subjective. The synthetic faces are cartoons: numbers on them say nothing "
     "about real people. A model trained on one of these sets is not representative of any "
     "real population."),
    ("Labels are perceived categories, not identities",
     "Gender, race and age labels are what annotators (or the file names) say a face looks "
     "like, in categories chosen by the dataset's authors. Gender is recorded as a binary that "
     "does not describe everyone; race groups are social categories whose borders differ "
     "between datasets (mapping FairFace's 7 groups into UTKFace's 5 loses information). A "
     "prediction is a guess about appearance, never a fact about a person."),
    ("Uses this model must not have",
     "No decisions about people (hiring, admission, credit, insurance, policing, access to "
     "services). No surveillance, tracking or profiling. No inferring the identity, gender or "
     "ethnicity of real people without their informed consent. This is a teaching model: its "
     "use is learning how such systems work and fail."),
    ("Error rates differ by group",
     "The per-group table shows that accuracy (or age error) is not the same for every group; "
     "an overall number hides these gaps. Small groups have wide confidence intervals (Wilson "
     "for accuracy, bootstrap for MAE): do not over-read them, and do not read a narrow gap as "
     "fairness."),
]



_CARD_LABELS = {
    "utkface": "UTKFace's gender (two classes) and race (five coarse classes, \"Others\" lumping "
               "many groups) were assigned by annotators from appearance.",
    "fairface": "FairFace's gender (two classes), race (seven classes) and age (nine bins) are "
                "crowd-workers' judgements of a photo.",
}
_MERGED_RACE = ("Trained on both, the model predicts race in UTKFace's five classes: FairFace's "
                "East and Southeast Asian become Asian, its Latino_Hispanic and Middle Eastern "
                "become Others, which hides differences between those groups.")
_CARD_BIAS = {
    "utkface": "UTKFace is dominated by White faces and by ages 20–40; its images come from the "
               "web with uneven lighting and pose.",
    "fairface": "FairFace (photos from Flickr) was balanced over its seven race groups, not over "
                "age: about half its faces are 20–39, few are under 3 or over 60.",
}


def model_card_ethics(datasets=("utkface",)) -> str:
    """A model card's closing Markdown (intended use, limits and ethics) for a model trained on
    ``datasets`` (names): each one's labels and known biases, said plainly."""
    names = [str(d) for d in datasets]
    labels = " ".join(_CARD_LABELS.get(d, f"{d}'s labels are its annotators' (or its file "
                                          "names').") for d in names)
    if {"utkface", "fairface"} <= set(names):
        labels += " " + _MERGED_RACE
    bias = " ".join(_CARD_BIAS[d] for d in names if d in _CARD_BIAS)
    which = "the dataset's" if len(names) == 1 else "the datasets'"
    bullets = [
        f"**Labels are annotations, not identities.** Race and gender here are the categories of "
        f"{which} annotators, not facts about the people shown. {labels} People do not fit "
        "these boxes; the model cannot know anyone's gender identity or ethnicity.",
        f"**Dataset bias.** {bias + ' ' if bias else ''}Errors are larger for under-represented "
        "groups: read the per-group table above, with its confidence intervals, before trusting "
        "any number.",
        "**Age** is predicted from appearance; the interval is wide and grows at the extremes.",
        "**Uses the model must not have:** decisions about people (hiring, admission, credit, "
        "policing, access to services), surveillance or tracking, inferring the ethnicity or "
        "gender of real people without their consent, or any use on children beyond this "
        "classroom.",
        "Photos uploaded to the app are processed in memory and never stored.",
    ]
    return ("## Intended use\n"
            "Teaching and self-study: seeing how a face-attribute classifier is trained and "
            "evaluated, and\nwhere it fails. Predictions on your own photo are a curiosity, not "
            "a fact about you.\n\n## Limits and ethics\n"
            + "\n".join(textwrap.fill(b, 95, initial_indent="- ", subsequent_indent="  ")
                        for b in bullets) + "\n")


MODEL_CARD_ETHICS = model_card_ethics(("utkface",))
