"""Evaluation, in one direction: the predictions frame (``predictions``) <- its numbers
(``classification``, ``regression``, ``losses``, ``groups``) <- ``interpretation`` (computed when
first asked for) <- ``report``; ``stored`` reads a run's stored predictions, ``evaluate`` runs a
model on any dataset, and ``figures`` draws the numbers (the only Plotly code). Depends on runs,
models and data, never on training or serving."""
