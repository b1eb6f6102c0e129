"""``course fetch``: download CIFAR-10 and the ImageNet weights ahead of an offline session.

Many GPU clusters have no internet on their compute nodes. Run ``course fetch`` once where
the network is reachable (a login node, a laptop) with the same ``COURSE_DATA_DIR`` (or
``--data-dir``) and ``TORCH_HOME``; afterwards ``COURSE_OFFLINE=1`` runs never touch the network.

    course fetch                       # everything: CIFAR-10 and the weights of every model
    course fetch cifar10               # CIFAR-10 into the data directory
    course fetch weights resnet18 vgg16
    course fetch --offline             # only check what is there; no network access at all

The checks and downloads themselves belong to the student library (a notebook downloads
the same way when it is allowed to); this module is the command line around them, and
imports the library (and torch) only when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_TIMEOUT_HELP = "$COURSE_DOWNLOAD_TIMEOUT, else 30"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``course fetch``."""
    parser.add_argument(
        "what", nargs="?", default="all", choices=("all", "cifar10", "weights"), help="what to fetch (default: all)"
    )
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="with 'weights': model names (default: every model of the architecture table)",
    )
    parser.add_argument(
        "--data-dir", help="data directory for CIFAR-10 (default: $COURSE_DATA_DIR, else the kit's data/)"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="no network access at all: only check what is there (same as COURSE_OFFLINE=1)",
    )
    parser.add_argument(
        "--mirror", help="base URL serving the same file names (default: $COURSE_MIRROR_URL, else the original servers)"
    )
    parser.add_argument(
        "--timeout", type=float, help=f"seconds to wait for a connection or data (default: {DEFAULT_TIMEOUT_HELP})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _plan(args: argparse.Namespace) -> list[tuple[str, Path | None, Callable]]:
    """``(label, destination, action)`` for every asset the arguments ask for."""
    from course_utils import assets
    from course_utils.data.cifar import fetch_cifar10, torchvision_cifar10
    from course_utils.models.weights import destination_of, fetch_weights, weight_models

    options = {"mirror": args.mirror, "timeout": args.timeout, "progress": not args.no_progress}
    steps = []
    if args.what in ("all", "cifar10"):
        folder = assets.data_dir(args.data_dir) / torchvision_cifar10().folder
        steps.append(("CIFAR-10", folder, lambda: fetch_cifar10(args.data_dir, **options)))
    if args.what in ("all", "weights"):
        for name in weight_models(args.models):
            steps.append((name, destination_of(name), lambda name=name: fetch_weights(name, **options)))
    return steps


def main(args: argparse.Namespace) -> int:
    """Run ``course fetch``; returns 0 when every asset is in place, 1 otherwise."""
    if args.models and args.what != "weights":
        print(f"error: model names go with `course fetch weights {' '.join(args.models)}`.", file=sys.stderr)
        return 2
    from course_utils import assets

    offline = contextlib.nullcontext() if not args.offline else assets.offline_mode(True)
    with offline:
        if assets.is_offline():
            print("Offline mode: checking what is there; nothing is downloaded.")
        try:
            steps = _plan(args)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return _run(steps)


def _run(steps) -> int:
    from course_utils._util import format_bytes
    from course_utils.assets import AssetUnavailableError, CorruptDownloadError, NetworkUnavailableError

    failures = 0
    for label, destination, action in steps:
        print(f"{label} -> {destination}" if destination else label, flush=True)
        try:
            done = action()
        except NetworkUnavailableError as err:
            print(
                f"error: {err}\nStopped: the network is unreachable, so the remaining assets were not tried.",
                file=sys.stderr,
            )
            return 1
        except (AssetUnavailableError, CorruptDownloadError, ImportError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            failures += 1
            continue
        print(f"  {done.status}: {format_bytes(done.size_bytes)} at {done.path}", flush=True)
    if failures:
        print(f"{failures} of {len(steps)} asset(s) are missing or damaged (see the errors above).", file=sys.stderr)
    return 1 if failures else 0
