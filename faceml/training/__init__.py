"""Training: the engine (Keras ``fit`` with FaceML's callbacks), the background worker and its
queue (``jobs``), and hyperparameter sweeps. Depends on evaluation, runs, models and data;
never on serving or the CLI."""
