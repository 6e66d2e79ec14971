#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when they are missing. CI runs as root; a
# developer who is not root is told what to install, and the tests that need it skip meanwhile.
set -euo pipefail
# "command-that-shows-it-is-there:debian-package"
REQUIRED=(
  "chromium:chromium"
  "spamassassin:spamassassin"
  "openssl:openssl"
)
need=()
for pair in "${REQUIRED[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
# Not root: the tests that need them skip meanwhile.
bash "$(dirname "$0")/apt-install.sh" system-deps "${need[@]}" || [ "$(id -u)" != 0 ]
