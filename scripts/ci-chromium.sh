#!/usr/bin/env bash
# Install Debian's headless Chromium and its WebDriver for the recorder's operator-page test
# (tests/e2e/test_recorder_page.py). Idempotent; run as root on Debian 12.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
chromium --version
