#!/bin/sh
# Install nacrith into a virtual environment, with llama.cpp built from source with nacrith's
# pinned kernel set (native/kernels.cmake), so that archives decode on other machines.
#
#   sh native/install.sh            # .venv with what compressing needs
#   sh native/install.sh test       # ... plus the test tools (any extras: "test,ray")
#
# Needs a C/C++ compiler, CMake and python3-venv (Debian/Ubuntu: build-essential cmake
# python3-venv).  Environment: PYTHON (default python3), NACRITH_VENV (default .venv).
# A llama-cpp-python that is already the pinned build is kept; any other build of it is
# replaced (pip's wheel cache is bypassed, since its key ignores how a wheel was compiled).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${NACRITH_VENV:-.venv}
EXTRAS=${1:-}
LLAMA=$(sed -n 's/^ *"\(llama-cpp-python==[^"]*\)".*/\1/p' pyproject.toml)

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip

# kernels.py runs standalone (it imports llama_cpp, not nacrith); exit 0 = pinned build.
if "$VENV/bin/python" native/kernels.py >/dev/null 2>&1; then
    echo "llama-cpp-python: the pinned kernel build is installed"
else
    echo "building $LLAMA with nacrith's pinned kernels (6-10 minutes) ..."
    "$VENV/bin/python" -m pip uninstall -q -y llama-cpp-python >/dev/null 2>&1 || true
    CMAKE_ARGS=$(sed -e 's/#.*//' native/kernels.cmake | tr -s ' \n' '  ') \
        "$VENV/bin/python" -m pip install -q --no-cache-dir "$LLAMA"
    "$VENV/bin/python" native/kernels.py
fi

if [ -n "$EXTRAS" ]; then
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
else
    "$VENV/bin/python" -m pip install -q -e .
fi
echo "installed: $VENV/bin/nacrith"
