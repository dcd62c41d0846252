#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the Playwright browser tests.
# Playwright's own browser download does not work here, so the tests launch this binary.
# Does nothing when it is already there; otherwise installs the Debian package `chromium`.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

fail() {
    echo "ensure-chromium: $*" >&2
    echo "ensure-chromium: install it by hand with: apt-get update && apt-get install -y chromium" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "$CHROMIUM is missing and apt-get is not available."

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    fail "$CHROMIUM is missing and installing it needs root (no passwordless sudo)."
fi

export DEBIAN_FRONTEND=noninteractive

# apt may be busy (another install, unattended upgrades): wait for its locks, and retry.
apt_get() {
    local attempt
    for attempt in 1 2 3 4 5; do
        if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get -o DPkg::Lock::Timeout=300 "$@" </dev/null; then
            return 0
        fi
        echo "ensure-chromium: apt-get $1 failed (attempt $attempt); retrying in 15 s" >&2
        sleep 15
    done
    return 1
}

echo "ensure-chromium: $CHROMIUM not found; installing Debian's chromium package"
apt_get update || fail "apt-get update failed."
apt_get install -y chromium || fail "apt-get install chromium failed."

[ -x "$CHROMIUM" ] || fail "the chromium package is installed but $CHROMIUM is still missing."
"$CHROMIUM" --version || true
