"""Serving: photos decoded at reduced scale, face detection, predicting with a model's own
preprocessing, and bundling runs into ``models/`` with their cards."""
