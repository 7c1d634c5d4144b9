#!/usr/bin/env bash
# Install everything the tests need (Debian and pip packages) on a fresh machine, then run the
# whole test suite. This is the README's second set-up command, and all that .ci/run calls.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/io -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: an X server for napari/VTK tests (pytest-xvfb) and the GL/X libraries they load.
DEB_PACKAGES="xvfb xauth libgl1 libegl1 libxrender1 libxext6 libxkbcommon-x11-0 libdbus-1-3 libfontconfig1 \
libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-cursor0"
missing=""
for pkg in $DEB_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]' -e 'plugins/napari-volrecon[test]'
exec python3 -m pytest "$@"
