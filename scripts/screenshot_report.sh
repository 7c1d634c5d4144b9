#!/usr/bin/env bash
# Render a run's report.html in headless Chromium with the network off and save a PNG screenshot.
# Usage: bash scripts/screenshot_report.sh OUT/report.html [shot.png]
# Needs Debian's chromium (apt-get install chromium). The page must render with no network:
# every image is embedded, so a blank or broken page here is a bug.
set -euo pipefail
page=$(realpath "$1")
shot=$(realpath -m "${2:-${page%.html}.png}")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --proxy-server="127.0.0.1:9" --proxy-bypass-list="<-loopback>" \
  --user-data-dir="$profile" --window-size=1200,3000 --hide-scrollbars \
  --screenshot="$shot" "file://$page" >/dev/null 2>&1
echo "$shot"
