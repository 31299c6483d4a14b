#!/usr/bin/env bash
# Install Glassbox on a fresh Debian/Ubuntu host (no Docker needed): build the
# binary, install it with its config and systemd unit, start it.
# Run as root from a checkout: docker-compose-free-deploy/install.sh
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: run as root (Glassbox makes real containers)" >&2
    exit 1
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

# Host packages: the static busybox of the built-in image, a toolchain to build.
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q busybox-static build-essential pkg-config curl ca-certificates
if ! command -v cargo >/dev/null; then
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# Kernel: overlayfs for the root filesystems (loaded now and at boot).
modprobe overlay
echo overlay >/etc/modules-load.d/glassbox.conf

(cd "$root" && cargo build --release -p backend)
install -m 0755 "$root/target/release/glassbox" /usr/local/bin/glassbox
install -d -m 0755 /usr/local/share/doc/glassbox
install -m 0644 "$here/README.md" /usr/local/share/doc/glassbox/README.md
install -d -m 0700 /var/lib/glassbox
install -d -m 0755 /etc/glassbox
if [[ ! -f /etc/glassbox/glassbox.toml ]]; then
    install -m 0644 "$here/glassbox.toml" /etc/glassbox/glassbox.toml
    echo "wrote /etc/glassbox/glassbox.toml: set allowed_origins to your site"
fi
install -m 0644 "$here/glassbox.service" /etc/systemd/system/glassbox.service
systemctl daemon-reload
systemctl enable --now glassbox
systemctl --no-pager status glassbox | head -5
echo "Glassbox listens on 127.0.0.1:8080; put nginx.conf (TLS) in front of it."
