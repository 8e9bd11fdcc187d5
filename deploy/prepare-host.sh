#!/usr/bin/env bash
# prepare-host.sh — make a Debian 12 machine ready to be a Cirrus host:
# QEMU, libvirt (started, with or without systemd), the state directories,
# and the test AMI. Idempotent: safe to run on every start.
#
# Usage: deploy/prepare-host.sh [--no-ami]
set -euo pipefail

readonly STATE_ROOT=/var/lib/cirrus
readonly AMI_DIR="${CIRRUS_TEST_AMI_DIR:-$STATE_ROOT/images/test-ami}"
readonly PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients iptables iproute2 dnsmasq-base busybox-static e2fsprogs cpio)

log() { printf 'prepare-host: %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }

source "$(dirname "$0")/lib/apt.sh"

start_libvirt() {
	if virsh -c qemu:///system version >/dev/null 2>&1; then return 0; fi
	if [[ -d /run/systemd/system ]]; then
		systemctl enable --now virtlogd libvirtd
	else
		# No systemd (containers, CI): run the daemons directly.
		pgrep -x virtlogd >/dev/null || virtlogd -d
		pgrep -x libvirtd >/dev/null || libvirtd -d
	fi
	for _ in $(seq 50); do virsh -c qemu:///system version >/dev/null 2>&1 && return 0; sleep 0.2; done
	log "libvirtd did not come up"; exit 1
}

# The test AMI is never rebuilt in place: instances' overlays are backed by
# its files. Without CIRRUS_TEST_AMI_DIR it is built into a directory named
# by the hash of its build script, and images/test-ami is a symlink to the
# current build, so a changed script yields a new AMI on every machine while
# older builds stay for the overlays that use them (register images by the
# resolved path).
build_test_ami() {
	local script hash target
	script="$(dirname "$0")/build-test-ami.sh"
	if [[ -n ${CIRRUS_TEST_AMI_DIR:-} ]]; then
		bash "$script" "$AMI_DIR"
		return
	fi
	hash=$(sha256sum "$script" | cut -c1-12)
	target="$STATE_ROOT/images/test-ami-$hash"
	bash "$script" "$target"
	# An AMI directory from before this scheme becomes one more old build.
	if [[ -d $AMI_DIR && ! -L $AMI_DIR ]]; then mv "$AMI_DIR" "$STATE_ROOT/images/test-ami-old-$(date +%s)"; fi
	ln -sfn "$target" "$AMI_DIR"
}

main() {
	local build_ami=1
	[[ "${1:-}" == "--no-ami" ]] && build_ami=0
	apt_install "${PACKAGES[@]}"
	# Without udev /dev/kvm stays root:root 0600; libvirt then re-probes QEMU on
	# every domain start (seconds each). Debian's udev rule sets kvm:0660.
	if [[ -c /dev/kvm ]]; then chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm; fi
	start_libvirt
	# QEMU runs as libvirt-qemu: every directory above an image or disk must be
	# searchable by others.
	install -d -m 0755 "$STATE_ROOT" "$STATE_ROOT/images" "$STATE_ROOT/instances" "$STATE_ROOT/agent"
	if ((build_ami)); then build_test_ami; fi
	log "host ready"
}

main "$@"
