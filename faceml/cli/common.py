"""What the commands share: the parser class, the progress bar, JSON output, and the data and
training flags (declared once in :mod:`faceml.flags`, re-exported here).

Light on purpose (argparse and the standard library): ``--help`` imports it.
"""

from __future__ import annotations

import argparse
import json
import sys

from faceml.flags import add_data_args, add_train_args, data_values, parse_kv, train_values

__all__ = ["Parser", "add_data_args", "add_train_args", "bar", "data_options", "parse_kv",
           "print_json", "train_values"]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def bar(desc: str, enabled: bool = True):
    """A progress callback drawing a tqdm bar on stderr, and the function that closes it."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bars = []  # made on the first report, so an early error prints no empty bar

    def cb(done, total):
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    return cb, lambda: bars and bars[0].close()


def print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str))


def data_options(a):
    """The parsed data flags (:func:`add_data_args`) as ``PrepOptions``."""
    from faceml.data.prepare import PrepOptions

    return PrepOptions.from_dict(data_values(a))
