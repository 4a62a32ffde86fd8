#!/usr/bin/env bash
# Installs what residuum needs, idempotently: Debian packages, ADIOS2 with MPI (cached outside the
# repository, keyed by version and options), and a Python venv with the PyPI adios2 wheel for tests.
# Prints `export` lines for the environment it found (eval them; scripts/prepare.sh does).
set -euo pipefail

ADIOS2_VERSION=2.12.1.1001               # PyPI version; the ADIOS2 release is 2.12.1
ADIOS2_RELEASE=2.12.1
CACHE_ROOT=${RESIDUUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/residuum}
ADIOS2_CACHE="$CACHE_ROOT/adios2-$ADIOS2_RELEASE-mpi"
VENV="$CACHE_ROOT/venv-adios2-$ADIOS2_VERSION"

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------------------------------
PKGS=(libopenmpi-dev openmpi-bin libclang-dev clang cmake pkg-config g++ make curl
      libzstd-dev fonts-dejavu-core)  # SZ3 (benchmark peer) finds zstd; plots need a font
# Python with venv and pip (the ADIOS2 sdist, the test venv): Debian's where the machine has none
# (a bare Debian has no python3, and its python3 alone no venv or pip).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
  PKGS+=(python3 python3-venv python3-pip)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    die "missing packages (${missing[*]}) and no root or password-less sudo; install them with: sudo apt-get install ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq >&2 || die "apt-get update failed (no network?); install by hand: apt-get install ${missing[*]}"
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
fi

# --- ADIOS2 ----------------------------------------------------------------------------------------
# Accept the user's ADIOS2 (>= 2.12, with MPI) from ADIOS2_DIR or CMAKE_PREFIX_PATH before building one.
adios2_prefix_ok() { # $1: candidate prefix; prints the prefix if usable
  local pre=$1 cfg
  cfg=$(ls "$pre"/lib*/cmake/adios2/adios2-config-version.cmake 2>/dev/null | head -n1) || true
  [ -n "$cfg" ] || return 1
  local ver
  ver=$(sed -n 's/.*PACKAGE_VERSION "\([0-9.]*\)".*/\1/p' "$cfg" | head -n1)
  [ -n "$ver" ] || return 1
  if [ "$(printf '%s\n2.12.0\n' "$ver" | sort -V | head -n1)" != "2.12.0" ]; then
    say "ignoring ADIOS2 $ver at $pre: residuum needs >= 2.12"
    return 1
  fi
  ls "$pre"/lib*/libadios2_c_mpi.so >/dev/null 2>&1 || { say "ignoring ADIOS2 at $pre: built without MPI"; return 1; }
  [ -x "$pre/bin/bpls" ] || { say "ignoring ADIOS2 at $pre: no bpls"; return 1; }
  echo "$pre"
}
prefix_of() { # ADIOS2_DIR may name the prefix or its lib/cmake/adios2 directory
  local d=$1
  case "$d" in */cmake/adios2) (cd "$d/../../.." && pwd) ;; *) echo "$d" ;; esac
}

ADIOS2_PREFIX=""
if [ -n "${ADIOS2_DIR:-}" ]; then
  ADIOS2_PREFIX=$(adios2_prefix_ok "$(prefix_of "$ADIOS2_DIR")") \
    || die "ADIOS2_DIR=$ADIOS2_DIR is not an ADIOS2 >= 2.12 install with MPI and bpls; unset it to build one"
fi
if [ -z "$ADIOS2_PREFIX" ] && [ -n "${CMAKE_PREFIX_PATH:-}" ]; then
  IFS=: read -r -a cands <<<"$CMAKE_PREFIX_PATH"
  for c in "${cands[@]}"; do ADIOS2_PREFIX=$(adios2_prefix_ok "$c") && break || ADIOS2_PREFIX=""; done
fi
if [ -z "$ADIOS2_PREFIX" ]; then
  ADIOS2_PREFIX=$ADIOS2_CACHE
  if [ ! -f "$ADIOS2_CACHE/.residuum-complete" ]; then
    say "building ADIOS2 $ADIOS2_RELEASE with MPI into $ADIOS2_CACHE (once; about 5-10 minutes)"
    mkdir -p "$CACHE_ROOT"
    work=$(mktemp -d "$CACHE_ROOT/adios2-build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    python3 -m pip download --quiet --no-deps --no-binary adios2 "adios2==$ADIOS2_VERSION" -d "$work" >&2 \
      || die "could not download the adios2==$ADIOS2_VERSION sdist from PyPI (no network?); set ADIOS2_DIR to an ADIOS2 >= 2.12 install instead"
    tar -xzf "$work"/adios2-*.tar.gz -C "$work"
    src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'adios2-*' | head -n1)
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$ADIOS2_CACHE" \
      -DCMAKE_INSTALL_LIBDIR=lib \
      -DADIOS2_USE_MPI=ON -DADIOS2_USE_SST=ON -DADIOS2_USE_Fortran=OFF -DADIOS2_USE_Python=OFF \
      -DBUILD_TESTING=OFF -DADIOS2_BUILD_EXAMPLES=OFF \
      -DADIOS2_USE_ZFP=OFF -DADIOS2_USE_SZ=OFF -DADIOS2_USE_SZ3=OFF -DADIOS2_USE_MGARD=OFF \
      -DADIOS2_USE_BZip2=OFF -DADIOS2_USE_PNG=OFF -DADIOS2_USE_Blosc2=OFF -DADIOS2_USE_HDF5=OFF \
      -DADIOS2_USE_DataSpaces=OFF -DADIOS2_USE_Campaign=OFF -DADIOS2_USE_Kokkos=OFF \
      -DADIOS2_USE_CUDA=OFF -DADIOS2_USE_Derived_Variable=OFF -DADIOS2_USE_LIBPRESSIO=OFF \
      -DADIOS2_USE_Caesar=OFF -DADIOS2_USE_Profiling=OFF >"$work/configure.log" 2>&1 \
      || { tail -n 40 "$work/configure.log" >&2; die "ADIOS2 configure failed (log above)"; }
    cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 \
      || { tail -n 40 "$work/build.log" >&2; die "ADIOS2 build failed (log above)"; }
    rm -rf "$ADIOS2_CACHE"
    cmake --install "$work/build" >"$work/install.log" 2>&1 || die "ADIOS2 install failed"
    touch "$ADIOS2_CACHE/.residuum-complete"
    say "ADIOS2 installed in $ADIOS2_CACHE"
  fi
fi

# --- Python venv with the PyPI adios2 wheel (used by the tests to read our files) ------------------
if [ ! -f "$VENV/.residuum-complete" ]; then
  say "creating Python venv $VENV with adios2==$ADIOS2_VERSION and numpy"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2 || die "python3 -m venv failed; install python3-venv"
  "$VENV/bin/pip" install --quiet --only-binary :all: "adios2==$ADIOS2_VERSION" numpy >&2 \
    || die "pip install adios2==$ADIOS2_VERSION numpy failed (no network?)"
  touch "$VENV/.residuum-complete"
fi

cat <<OUT
export ADIOS2_DIR="$ADIOS2_PREFIX"
export RESIDUUM_PYTHON="$VENV/bin/python"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT
