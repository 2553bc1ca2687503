#!/usr/bin/env bash
# Build the self-contained Hearth app folder: dist/Hearth/ (start it with dist/Hearth/Hearth).
#
#   bash packaging/build.sh               # the app, without the demo model (~235 MB folder)
#   bash packaging/build.sh --with-demo   # also bundle the demo model (+98 MB)
#   bash packaging/build.sh --archive     # also pack dist/Hearth-<version>-linux-x86_64.tar.gz
#
# Needs the development environment first (bash packaging/bootstrap.sh install) and
# PyInstaller in it; this script installs PyInstaller into the venv when it is missing.
# The build uses the venv's llama-cpp-python, which bootstrap.sh compiled portably
# (GGML_NATIVE=OFF), so the app folder runs on any x86-64 CPU, not just this one.
# HEARTH_DIST_DIR / HEARTH_BUILD_DIR move the output / work folders (default dist/, build/).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${HEARTH_VENV:-.venv}
PY="$VENV/bin/python"
DIST=${HEARTH_DIST_DIR:-dist}           # where Hearth/ lands (the tests build into a tmp dir)
WORK=${HEARTH_BUILD_DIR:-build/pyinstaller}
say() { printf '\033[1m[hearth-build]\033[0m %s\n' "$*"; }

with_demo=0
archive=0
for arg in "$@"; do
  case "$arg" in
    --with-demo) with_demo=1 ;;
    --archive) archive=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

[ -x "$PY" ] || { say "No virtual environment at $VENV: run 'bash packaging/bootstrap.sh install' first."; exit 1; }
if ! "$PY" -c "import PyInstaller, sys; sys.exit(int(PyInstaller.__version__.split('.')[0]) < 6)" 2>/dev/null; then
  say "Installing PyInstaller into $VENV (a build-time tool; the app does not need it)…"
  "$PY" -m pip install --quiet "pyinstaller>=6"
fi

say "Checking that the committed icons match resources/hearth.svg…"
"$PY" packaging/make_icons.py --check

spec_args=()
[ "$with_demo" = 1 ] && spec_args=(-- --with-demo)

say "Building dist/Hearth (PyInstaller, one folder)…"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" \
  packaging/hearth.spec "${spec_args[@]}"

app="$DIST/Hearth"
lib="$app/_internal/llama_cpp/lib"
# The wheel ships libX.so and libX.so.0 as two identical files; keep one, link the other
# (the loader opens libX.so, the libraries find each other by their sonames libX.so.0).
if [ -d "$lib" ]; then
  for soname in "$lib"/*.so.0; do
    plain="${soname%.0}"
    if [ -f "$plain" ] && [ ! -L "$plain" ] && cmp -s "$plain" "$soname"; then
      ln -sf "$(basename "$soname")" "$plain"
    fi
  done
fi

# Qt and PySide6 are LGPL-3.0 (which builds on the GPL-3.0 text): ship both texts next to
# the app; the other components' licenses are in _internal/*.dist-info/.
mkdir -p "$app/LICENSES"
for text in LGPL-3 GPL-3; do
  if [ -f "/usr/share/common-licenses/$text" ]; then
    cp "/usr/share/common-licenses/$text" "$app/LICENSES/$text.txt"
  else
    say "warning: /usr/share/common-licenses/$text not found; add the $text text to $app/LICENSES before releasing."
  fi
done

say "Checking the built app starts…"
QT_QPA_PLATFORM=offscreen "$app/Hearth" --version

size=$(du -sh "$app" | cut -f1)
say "Built $app ($size) in $(( $(date +%s) - start )) s. Start it with: $app/Hearth"
say "Menu entry and .gguf association for this user: $app/Hearth --install-desktop-entry"

if [ "$archive" = 1 ]; then
  version=$("$PY" -c "import app; print(app.__version__)")
  tarball="$DIST/Hearth-$version-linux-$(uname -m).tar.gz"
  tar -C "$DIST" -czf "$tarball" Hearth
  say "Packed $tarball ($(du -sh "$tarball" | cut -f1))."
fi
