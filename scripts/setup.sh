#!/usr/bin/env bash
# Idempotent set-up: a project venv (.venv) with torch + this package, and the Fashion-MNIST files.
# Safe to rerun; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TISSUEBENCH_VENV:-.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    echo "[setup] installing torch + torchvision (a few minutes)"
    if [ "$(uname -m)" = "x86_64" ]; then
        "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    else
        "$VENV/bin/pip" install -q torch torchvision
    fi
fi
if ! "$VENV/bin/python" -c "import benchmarks, torch_pruning, pytest" 2>/dev/null \
    || [ pyproject.toml -nt "$VENV/.tissuebench-installed" ]; then
    echo "[setup] installing tissuebench and its dependencies"
    "$VENV/bin/pip" install -q -e ".[dev,ray,deploy]"
    touch "$VENV/.tissuebench-installed"
fi
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -e "$FMNIST/train-images-idx3-ubyte.gz" ] && [ ! -e "$FMNIST/train-images-idx3-ubyte" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "[setup] installing the Debian package dataset-fashion-mnist"
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "[setup] Fashion-MNIST not found at $FMNIST: run 'sudo apt-get install dataset-fashion-mnist'"
        echo "        or pass --data-root DIR to tissuebench (see README, 'Data')."
    fi
fi
