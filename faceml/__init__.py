"""FaceML: learn face-attribute classification (gender, race/ethnicity, age), done right.

The library never imports Streamlit; the dashboard (``streamlit_app.py``) and the CLI
(``python -m faceml``) are two faces of the same code.
"""

__version__ = "0.1.0"
