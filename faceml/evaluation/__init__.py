"""Evaluation: metrics from scikit-learn over a predictions frame, stored-prediction and
cross-dataset evaluation of runs and models, and the Markdown/HTML report. Depends on runs,
models and data, never on training or serving."""
