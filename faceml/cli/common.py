"""What the commands share: the parser class, the progress bar, JSON output, and the data and
training flags (declared once in :mod:`faceml.flags`, re-exported here).

Light on purpose (argparse and the standard library): ``--help`` imports it.
"""

from __future__ import annotations

import argparse
import json
import sys

from faceml.flags import add_data_args, add_train_args, data_values, parse_kv, train_values

__all__ = ["Parser", "add_backend_args", "add_data_args", "add_train_args", "backend_executor",
           "bar", "data_options", "parse_kv", "print_json", "train_values", "wait_for"]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def add_backend_args(p) -> None:
    """``--backend local|ray`` and ``--address``: where queued runs train
    (:func:`faceml.training.jobs.get_executor`)."""
    p.add_argument("--backend", choices=("local", "ray"), default=None,
                   help="who trains the queued runs: the local worker (default, or "
                        "FACEML_EXECUTOR) or Ray (pip install faceml[scale])")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="a running Ray cluster's address (implies --backend ray; default "
                        "FACEML_RAY_ADDRESS, else a local Ray that ends with this command)")


def backend_executor(a, wait: bool):
    """The executor ``--backend``/``--address`` ask for (``--address`` alone means Ray), else
    ``FACEML_EXECUTOR``'s. A Ray this command starts itself ends with it, so a command that
    does not ``wait`` (``--no-wait``, ``--background``) needs a cluster's address."""
    from faceml.errors import ConfigError
    from faceml.training import jobs

    ex = jobs.get_executor(a.backend or ("ray" if a.address else None), a.address)
    if not wait and not ex.detached:
        raise ConfigError("a local Ray ends with this command, so its runs need it to wait: "
                          "drop --no-wait/--background, or give --address of a running Ray "
                          "(ray start --head)")
    return ex


def wait_for(run, ex, poll: float = 0.5) -> None:
    """Block until ``run`` has finished; one its executor lost before it trained (a Ray actor
    that died) is marked failed instead of being waited for forever."""
    import time

    from faceml.runs import FINISHED

    checked = time.monotonic()
    while (state := run.status().get("state")) not in FINISHED:
        if state == "queued" and ex.name == "ray" and time.monotonic() - checked > 5:
            from faceml.training import ray_executor

            checked = time.monotonic()
            ray_executor.check([run])
        time.sleep(poll)


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
