#!/usr/bin/env bash
# Creates (once) the virtual environment of the reference libraries the tests compare emlab against
# (scripts/pyref-requirements.txt: transformers, peft, tokenizers, safetensors, jinja2, torch CPU)
# outside the clone, so that CI and later runs reuse it, and prints its python. Tests that need it
# read $EMLAB_PYTHON (scripts/test.sh sets it) and skip with a message where it is absent.
#   EMLAB_PYREF_DIR   where the environments live (default ${XDG_CACHE_HOME:-~/.cache}/emlab)
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=scripts/pyref-requirements.txt
hash=$(sha256sum "$REQ" | cut -c1-12)
root="${EMLAB_PYREF_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/emlab}"
venv="$root/pyref-$hash"
if [ ! -f "$venv/.complete" ]; then
  PY=$(command -v python3 || true)
  if [ -z "$PY" ] || ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "pyref: installing python3-venv" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3 python3-venv >&2
    PY=$(command -v python3)
  fi
  echo "pyref: creating $venv (the reference libraries, once)" >&2
  rm -rf "$venv"
  mkdir -p "$root"
  "$PY" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2
  "$venv/bin/python" -c 'import torch, transformers, peft, tokenizers, safetensors, jinja2' >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
