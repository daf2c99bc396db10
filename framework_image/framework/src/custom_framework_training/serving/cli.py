"""The image's ``serve`` command: what SageMaker runs as ``docker run IMAGE serve``.

Without flags it follows SageMaker's contract (all interfaces, port 8080 or
``SAGEMAKER_BIND_TO_PORT``, the model from ``/opt/ml/model``); the flags exist for
runs outside a container, such as binding to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from custom_framework_training.serving import environment
from custom_framework_training.serving.errors import StartupError
from custom_framework_training.serving.server import serve

EXIT_STARTUP_FAILED = 2


def parse_args(argv: list[str] | None, settings: environment.ServingEnvironment) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__)
    parser.add_argument(
        "--host", default="0.0.0.0", help="address to bind (default: all interfaces, as SageMaker needs)"
    )
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--model-dir", type=Path, default=settings.model_dir)
    parser.add_argument(
        "--code-dir", type=Path, help="handlers folder (default: SAGEMAKER_SUBMIT_DIRECTORY, else MODEL_DIR/code)"
    )
    parser.add_argument("--workers", type=int, default=settings.workers)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start serving, or exit non-zero with one line when the model or its handlers cannot be loaded."""
    try:
        args = parse_args(argv, environment.from_environ())
        serve(args.model_dir, args.code_dir, args.host, args.port, args.workers)
    except StartupError as e:
        print(f"serve: error: {e}", file=sys.stderr)
        sys.exit(EXIT_STARTUP_FAILED)


if __name__ == "__main__":
    main(sys.argv[1:])
