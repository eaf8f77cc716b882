#!/bin/sh
# Install the Debian packages given as arguments, only those missing.
# Quick when everything is present: one dpkg-query, no apt-get at all.
set -eu

missing=""
for pkg in "$@"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $pkg" ;;
	esac
done

if [ -z "$missing" ]; then
	echo "deps: all $# Debian packages present"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "deps: missing packages:$missing" >&2
	echo "deps: run 'make deps' as root (or install sudo) to install them" >&2
	exit 1
fi

echo "deps: installing:$missing"
echo "deps: apt-get update"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "deps: apt-get install -y$missing"
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
echo "deps: done"
