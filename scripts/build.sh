#!/usr/bin/env bash
# Builds the ADIOS2 plugin and installs residuum's CMake package into target/residuum-install,
# then the C++ example reader against that package. Expects scripts/setup.sh's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ADIOS2_DIR:?run scripts/setup.sh first (eval \"\$(scripts/setup.sh)\")}"
PREFIX=${RESIDUUM_PREFIX:-$PWD/target/residuum-install}
log() { printf '[build] %s\n' "$*" >&2; }
mkdir -p target

log "plugin + CMake package -> $PREFIX"
cmake -S adios-plugin -B target/cmake-plugin -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$ADIOS2_DIR" -DCMAKE_INSTALL_PREFIX="$PREFIX" >target/cmake-plugin.log 2>&1 \
  || { tail -n 30 target/cmake-plugin.log >&2; exit 1; }
cmake --build target/cmake-plugin >>target/cmake-plugin.log 2>&1 \
  || { tail -n 30 target/cmake-plugin.log >&2; exit 1; }
cmake --install target/cmake-plugin >>target/cmake-plugin.log 2>&1 \
  || { tail -n 30 target/cmake-plugin.log >&2; exit 1; }

log "C++ example reader (find_package(residuum))"
cmake -S examples/cpp -B target/cpp-reader -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PREFIX;$ADIOS2_DIR" >target/cpp-reader.log 2>&1 \
  || { tail -n 30 target/cpp-reader.log >&2; exit 1; }
cmake --build target/cpp-reader >>target/cpp-reader.log 2>&1 \
  || { tail -n 30 target/cpp-reader.log >&2; exit 1; }
log "C example writer (residuum::writer)"
cmake -S examples/c -B target/c-writer -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PREFIX;$ADIOS2_DIR" >target/c-writer.log 2>&1 \
  || { tail -n 30 target/c-writer.log >&2; exit 1; }
cmake --build target/c-writer >>target/c-writer.log 2>&1 \
  || { tail -n 30 target/c-writer.log >&2; exit 1; }
echo "export ADIOS2_PLUGIN_PATH=\"$PREFIX/lib/residuum/adios2-plugins\""
