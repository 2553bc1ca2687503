"""The frozen app's entry script (PyInstaller runs this file as ``__main__``).

A separate file rather than ``app/__main__.py`` itself so that ``app`` stays an ordinary
package inside the bundle (``app.__main__`` importable like in a checkout). The engine
child re-enters here too: multiprocessing's *spawn* starts this executable again, and
``multiprocessing.freeze_support()`` — the first thing ``main()`` does — turns that
process into the engine before any Qt module is imported.
"""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
