#!/usr/bin/env bash
# Fetches Postfix's load tools (smtp-sink, smtp-source) from Debian's postfix package into a
# project-local folder for bench/send.py: apt-get download + dpkg -x, nothing installed, no
# daemon started. Prints the folder holding usr/sbin/smtp-sink.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="${POSTFIX_TOOLS_DIR:-$here/bench/.postfix}"
if [ -x "$dest/usr/sbin/smtp-sink" ] && [ -x "$dest/usr/sbin/smtp-source" ]; then
  echo "$dest"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"  # apt's download user must be able to write here
( cd "$work" && apt-get download postfix >/dev/null 2>&1 ) || {
  echo "postfix-tools: 'apt-get download postfix' failed; run 'apt-get update' first" >&2; exit 1; }
mkdir -p "$dest"
dpkg -x "$work"/postfix_*.deb "$dest"
echo "$dest"
