#!/usr/bin/env bash
# Installs what the fleet console's browser tests need, when missing:
# Debian's headless-capable Chromium and its WebDriver (chromium,
# chromium-driver: /usr/bin/chromium, /usr/bin/chromedriver). The tests
# start chromedriver themselves on a loopback port. Needs root (or sudo).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "browser tests: installing ${missing[*]} with apt-get"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
