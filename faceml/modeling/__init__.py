"""Models: registered layers, heads' outputs, named architectures (presets and a builder), the
VAE, ensembles, model files (``.keras``, ``safe_mode=True``) and parameter counts without
weights. Depends on ``faceml.data`` (label and head specs) and below, never on runs, training
or serving."""
