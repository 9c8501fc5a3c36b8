"""``python -m faceml``: the same library from a terminal or a GPU server.

Bad input exits with code 2 and one line ``error: …`` on stderr; runs made here show in the
dashboard when it points at the same runs folder (``FACEML_RUNS_DIR``).

Each command is a module ``faceml.cli.<command>`` with ``add_arguments(parser)`` and
``run(args) -> exit code``, listed in :data:`COMMANDS` with its one-line help. A command's
module is imported only when that command is asked for (to run it, or for its ``--help``), so
``python -m faceml --help`` imports none of them and no Keras, pandas or Pillow.
"""

from __future__ import annotations

import importlib
import os
import sys

from faceml.cli.common import Parser
from faceml.errors import FaceMLError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# command -> (module, help): the one place a command is registered
COMMANDS: dict[str, tuple[str, str]] = {
    "datasets": ("faceml.cli.datasets", "list dataset adapters and which are on disk"),
    "prepare": ("faceml.cli.prepare", "decode a dataset into the array cache"),
    "train": ("faceml.cli.train", "train a model (cached: a known config returns its run)"),
    "sweep": ("faceml.cli.sweep", "queue a grid of training runs (--grid KEY=V1,V2), wait, "
              "and list their validation metrics"),
    "recipe": ("faceml.cli.recipe", "the course notebooks' experiments: recipe list | show "
               "NAME | run NAME [--path --epochs --fraction --split]"),
    "runs": ("faceml.cli.runs", "list runs"),
    "stop": ("faceml.cli.stop", "stop a queued or running run"),
    "worker": ("faceml.cli.worker", "train queued runs (started by the app)"),
    "evaluate": ("faceml.cli.evaluate", "metrics of a run or a model on a dataset split; "
                 "export predictions and a report"),
    "bundle": ("faceml.cli.bundle", "copy a finished run (or the average of several) into "
               "models/ with a model card"),
    "predict": ("faceml.cli.predict", "find the faces in photos and predict their labels"),
    "shrink": ("faceml.cli.shrink", "a UTKFace copy at model size (for carrying to a server)"),
}


def build_parser(commands=None) -> Parser:
    """The parser; ``commands``: the commands whose arguments are defined (their modules
    imported), default all. The others are listed with their help and take no arguments."""
    p = Parser(prog="python -m faceml", description="FaceML Studio from the command line")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for name, (module, text) in COMMANDS.items():
        s = sub.add_parser(name, help=text)
        if commands is None or name in commands:
            mod = importlib.import_module(module)
            mod.add_arguments(s)
            s.set_defaults(fn=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    asked = [w for w in argv if not w.startswith("-")][:1]  # the command (no option before it)
    a = build_parser(asked).parse_args(argv)
    try:
        return a.fn(a)
    except FaceMLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
