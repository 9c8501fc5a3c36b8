"""Markdown shared by the evaluation report (:mod:`faceml.evaluation.report`) and the model card
(:mod:`faceml.serving.bundle`): one table writer, one number format, and the ethics texts both end
with.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ETHICS_AND_LIMITS", "MODEL_CARD_ETHICS", "cell_text", "md_table"]


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



MODEL_CARD_ETHICS = """## Intended use
Teaching and self-study: seeing how a face-attribute classifier is trained and evaluated, and
where it fails. Predictions on your own photo are a curiosity, not a fact about you.

## Limits and ethics
- **Labels are annotations, not identities.** UTKFace's gender (two classes) and race (five
  coarse classes, "Others" lumping many groups) were assigned by annotators from appearance.
  People do not fit these boxes; the model cannot know anyone's gender identity or ethnicity.
- **Dataset bias.** UTKFace is dominated by White faces and by ages 20–40; its images come from
  the web with uneven lighting and pose. Errors are larger for under-represented groups: read
  the per-group table above, with its confidence intervals, before trusting any number.
- **Age** is predicted from appearance; the interval is wide and grows at the extremes.
- **Uses the model must not have:** decisions about people (hiring, admission, credit,
  policing, access to services), surveillance or tracking, inferring the ethnicity or gender of
  real people without their consent, or any use on children beyond this classroom.
- Photos uploaded to the app are processed in memory and never stored.
"""
