"""``python -m app`` and the ``hearth`` command.

Imports stay inside ``main`` so that the engine child (started with multiprocessing's
spawn, which re-imports this module) does not load Qt.
"""

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()  # a packaged app re-enters here for the engine child
    from app.application import run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
