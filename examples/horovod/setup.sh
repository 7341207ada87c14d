#!/bin/bash
# setup.sh: one command to get Horovod + PyTorch (CPU, MPI) for the examples in this
# directory, in a cached virtual environment outside the repository.
#
#   examples/horovod/setup.sh            (as root on Debian 12; ~10 min on 2 cores, 2.5 GB)
#   QTOPO_HVD_VENV=DIR examples/horovod/setup.sh
#
# Installs torch 2.0.1 from PyPI (its Linux wheels are CUDA builds and pull about 2.5 GB of
# nvidia-* wheels; they run on the CPU) and builds horovod 0.28.1 from source against the
# system Open MPI, with PyTorch and MPI only (no TensorFlow, MXNet, Gloo; CPU operations
# over MPI).  Horovod >= 0.28.1 with torch >= 2.1 needs C++17 (horovod #3996, #4014), so
# the versions are pinned.  If a CUDA toolkit is installed under /usr/local (cuda*, or an
# nvcc in /usr/local/bin), Horovod's CMake turns on its CUDA kernels (and fails when the
# toolkit is incomplete); the build therefore runs in a private mount namespace with an
# empty tmpfs over /usr/local (unshare -m; root needed then).
#
# Exit status: 0 ready (or already cached), 1 the download or build failed, 2 something
# needed is missing (the message says what and how to get it).
set -euo pipefail

VENV=${QTOPO_HVD_VENV:-/var/cache/qtopo/hvd-venv}
PY=${QTOPO_HVD_PYTHON:-/usr/bin/python3}
TORCH=2.0.1
HOROVOD=0.28.1
STAMP=$VENV/.qtopo-hvd-ready

missing() {
    echo "horovod setup: $*" >&2
    exit 2
}

check_prerequisites() {
    local cmd
    [[ -x $PY ]] || missing "$PY not found (apt-get install python3)"
    "$PY" -c 'import sys; sys.exit(not ((3, 8) <= sys.version_info[:2] <= (3, 11)))' ||
        missing "torch $TORCH has wheels for Python 3.8 to 3.11 only; $PY is $("$PY" -V)"
    "$PY" -c 'import venv, ensurepip' 2>/dev/null ||
        missing "python venv support missing (apt-get install python3-venv)"
    [[ -f $("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h ]] ||
        missing "Python headers missing (apt-get install python3-dev)"
    for cmd in g++ cmake make mpicxx mpirun; do
        command -v "$cmd" >/dev/null ||
            missing "'$cmd' not found (apt-get install g++ cmake make libopenmpi-dev openmpi-bin)"
    done
    if cuda_under_usr_local; then
        [[ $EUID -eq 0 ]] ||
            missing "a CUDA toolkit is under /usr/local: hiding it from the build needs root"
        command -v unshare >/dev/null || missing "'unshare' not found (apt-get install util-linux)"
    fi
}

cuda_under_usr_local() {
    compgen -G '/usr/local/cuda*' >/dev/null || [[ -e /usr/local/bin/nvcc ]]
}

already_ready() {
    [[ -f $STAMP ]] && "$VENV/bin/python" -c 'import numpy, torch, horovod.torch' 2>/dev/null
}

# pip install of horovod, with /usr/local hidden when a CUDA toolkit is there.
build_horovod() {
    # CUDA_HOME (set on CUDA machines) alone makes torch's cpp_extension, and so Horovod's
    # FindPytorch, report a CUDA build: drop it and its relatives for this command
    local -a env=(-u CUDA_HOME -u CUDA_PATH -u CUDA_ROOT -u CUDAToolkit_ROOT
        HOROVOD_WITH_MPI=1 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1
        HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITHOUT_GLOO=1 HOROVOD_CPU_OPERATIONS=MPI
        MAKEFLAGS=-j2)
    local pip="$VENV/bin/pip install --no-cache-dir --no-build-isolation horovod==$HOROVOD"
    if cuda_under_usr_local; then
        unshare -m sh -c "mount -t tmpfs none /usr/local && env ${env[*]} $pip"
    else
        env "${env[@]}" $pip
    fi
}

main() {
    local start=$SECONDS
    check_prerequisites
    if already_ready; then
        echo "horovod setup: ready (cached) in $VENV"
        return 0
    fi
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
    # torch 2.0.1's cpp_extension (used by Horovod's build) imports pkg_resources, which
    # setuptools dropped in 81
    "$VENV/bin/pip" install -q --upgrade pip wheel "setuptools<70" packaging ||
        { echo "horovod setup: pip upgrade failed" >&2; exit 1; }
    if ! "$VENV/bin/python" -c \
        "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH')" 2>/dev/null; then
        echo "horovod setup: installing torch $TORCH (about 2.5 GB of wheels)"
        "$VENV/bin/pip" install --no-cache-dir -q "torch==$TORCH" "numpy<2" ||
            { echo "horovod setup: torch $TORCH download/install failed" >&2; exit 1; }
    fi
    echo "horovod setup: building horovod $HOROVOD (about 10 minutes on 2 cores)"
    build_horovod || { echo "horovod setup: horovod build failed" >&2; exit 1; }
    if ! "$VENV/bin/horovodrun" --check-build | tee /dev/stderr | grep -q '\[X\] PyTorch'; then
        echo "horovod setup: horovod was built without PyTorch support" >&2
        exit 1
    fi
    echo "torch=$TORCH horovod=$HOROVOD seconds=$((SECONDS - start))" >"$STAMP"
    echo "horovod setup: ready in $VENV ($((SECONDS - start)) s)"
}

main "$@"
