# Sourced by main.sh and test.sh: installs what is missing (setup.sh), builds the plugin and the
# CMake package (build.sh), and exports the environment both report.
# Assignments keep `set -e` working: a failing step stops the caller here.
env_setup=$(scripts/setup.sh)
eval "$env_setup"
env_build=$(scripts/build.sh)
eval "$env_build"
