#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (Playwright's own browser download is not used).
# Also, best effort, a colour emoji font, so the app's state icons (🏃 ✅ …) show in the tests'
# screenshots instead of empty boxes.
set -euo pipefail
have_font() { dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; }
if command -v chromium >/dev/null 2>&1 && have_font; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
updated=""
if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq && updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
command -v chromium
if ! have_font; then
  { [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; } && exit 0
  [ -n "$updated" ] || $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-noto-color-emoji >/dev/null \
    || echo "note: fonts-noto-color-emoji not installed; emoji show as boxes in screenshots" >&2
fi
