#!/usr/bin/env bash
# Run every test: ./scripts/test.sh [pytest args]
#
# Installs what the tests need into .venv (pinned; llama-cpp-python is built once per
# machine for AVX2 and kept in ~/.cache/localai/wheels), the Node example's packages, and
# cloud-init's JSON schema from Debian's package; then ruff and pytest. Tests that need
# root (loop devices) or a Docker Engine skip elsewhere; with CI=true a skip is a failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.requirements-dev.sha256"
want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --quiet --upgrade pip
  # llama-cpp-python compiles llama.cpp. Build it for AVX2, the kernels LocalAI v2.24's
  # CPU image ships, not -march=native: a native AVX-512/AMX build of this llama.cpp
  # crashes in decode on Sapphire Rapids hosts, and would measure kernels LocalAI lacks.
  # pip's wheel cache ignores CMAKE_ARGS, so the wheel is kept here, keyed by both.
  llama_spec="$(grep -E '^llama-cpp-python' requirements-dev.txt | sed 's/\[[^]]*\]//')"
  llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  llama_key="$(printf '%s|%s' "$llama_spec" "$llama_cmake" | sha256sum | cut -c1-16)"
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/localai/wheels/$llama_key"
  if ! compgen -G "$wheels/llama_cpp_python-*.whl" >/dev/null; then
    # The build needs a C/C++ compiler: install one when we can (root with apt).
    if ! command -v c++ >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test: installing a C/C++ compiler (build-essential) for llama-cpp-python"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends build-essential >/dev/null
      else
        echo "test: the tests build llama-cpp-python from source: install a C/C++ compiler (e.g. sudo apt-get install build-essential, or xcode-select --install) and run again" >&2
        exit 1
      fi
    fi
    echo "test: building $llama_spec for AVX2 (once per machine, ~5 min on 2 cores)"
    CMAKE_ARGS="$llama_cmake" .venv/bin/pip wheel --quiet --no-deps --no-cache-dir \
      --wheel-dir "$wheels.partial" "$llama_spec"
    rm -rf "$wheels" && mv "$wheels.partial" "$wheels"
  fi
  echo "test: installing Python dependencies"
  .venv/bin/pip install --quiet --find-links "$wheels" -r requirements-dev.txt
  printf '%s\n' "$want" >"$stamp"
fi

if command -v npm >/dev/null 2>&1; then
  lock_stamp="examples/node/node_modules/.lock.sha256"
  lock_want="$(sha256sum examples/node/package-lock.json | cut -d' ' -f1)"
  if [ ! -f "$lock_stamp" ] || [ "$(cat "$lock_stamp")" != "$lock_want" ]; then
    (cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$lock_want" >"$lock_stamp"
  fi
else
  echo "test: npm not found: the Node example's tests will skip (they fail under CI=true)"
fi

if ! schema="$(scripts/fetch-cloud-init-schema.sh)"; then
  echo "test: could not fetch cloud-init's schema: its validation test will skip (fails under CI=true)"
else
  export CLOUD_INIT_SCHEMA="$schema"
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
