#!/usr/bin/env bash
# Installs Debian packages as root (CI); a user who is not root is told what to install.
#   bash scripts/apt-install.sh WHO PACKAGE...   (WHO names the caller in messages)
# Exits 1 when not root, so a caller that cannot go on without them can stop.
set -euo pipefail
who=$1; shift
if [ "$(id -u)" != 0 ]; then
  echo "$who: not root; install these Debian packages: $*" >&2
  exit 1
fi
echo "$who: installing $*" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
