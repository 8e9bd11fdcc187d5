#!/usr/bin/env bash
# build-test-ami.sh — build a tiny bootable test machine image ("AMI") for Cirrus.
#
# Usage: deploy/build-test-ami.sh OUTDIR
#
# Produces in OUTDIR:
#   vmlinuz        Debian cloud kernel (direct kernel boot; no bootloader in the image)
#   initrd.img     busybox initramfs: loads virtio (+ACPI button/evdev) modules,
#                  mounts /dev/vda (ext4, rw) and switch_roots into /sbin/init
#   rootfs.qcow2   256 MiB ext4 root disk: busybox + a shell-script /sbin/init that
#                  prints "CIRRUS-BOOT instance-id=<smbios serial> boot=<n>" on ttyS0,
#                  then (in the background) brings up eth0 by DHCP, serves HTTP on
#                  :80 and a banner on :8080, and runs user-data from the metadata
#                  service (see "Guest console protocol" below)
#   manifest.json  {"kernel","ramdisk","root","cmdline","kernelPackage"}
#
# Guest console protocol (ttyS0, one line each, in this order per boot):
#   CIRRUS-BOOT instance-id=<id> boot=<n>            root fs up, boot counter n
#   CIRRUS-NET instance-id=<id> ip=<addr/prefix> gw=<router>
#   CIRRUS-NET instance-id=<id> ip=none              no eth0 or no DHCP lease in 30 s
#   CIRRUS-METADATA instance-id=<id> metadata-instance-id=<value|none>
#   CIRRUS-USERDATA-BEGIN instance-id=<id>           user-data starting with "#!":
#     ...its stdout/stderr, unprefixed...
#   CIRRUS-USERDATA-END instance-id=<id> rc=<exit code>
#   CIRRUS-USERDATA-NONE instance-id=<id>            no (script) user-data
#   CIRRUS-SHUTDOWN instance-id=<id>                 ACPI power button pressed
# and, at any time after the first CIRRUS-NET with an address:
#   CIRRUS-NET instance-id=<id> ip=<addr/prefix> gw=<router>
#                     eth0 was replaced (NIC hot-unplugged and plugged back in)
#                     and has its lease again
# Services from the moment CIRRUS-NET is printed (bound to all addresses):
#   TCP 80    busybox httpd; GET / returns "<id>\n"
#   TCP 8080  sends "cirrus-8080 <id>\n" and closes (not HTTP), every connection
# Host-side expectations: DHCP on the guest's bridge whose router option is the
# gateway (the default route; nothing else is configured, no DNS), and
# http://169.254.169.254/latest/{user-data,meta-data/instance-id} reachable via
# that gateway (404 on user-data = none). <id> is the SMBIOS system serial,
# which also becomes the guest's hostname.
#
# Everything comes from Debian packages; the kernel is fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`, so nothing is installed
# into the host except the build tools themselves (busybox-static, e2fsprogs,
# qemu-utils, cpio), which are installed only if missing.
#
# Environment overrides (optional):
#   CIRRUS_KERNEL_META      meta package whose dependency names the kernel
#                           (default linux-image-cloud-amd64)
#   CIRRUS_KERNEL_PACKAGE   concrete kernel package to use instead of resolving the meta
#   CIRRUS_ROOTFS_SIZE      virtual size of the root disk (default 256M)
set -euo pipefail

readonly KERNEL_META="${CIRRUS_KERNEL_META:-linux-image-cloud-amd64}"
readonly ROOTFS_SIZE="${CIRRUS_ROOTFS_SIZE:-256M}"
# console=ttyS0: the control plane captures the serial port, and the guest
#   prints its CIRRUS-* markers there.
# panic=-1: if anything in early boot panics, reboot at once instead of hanging
#   forever (a hung TCG guest burns a host core).
# quiet: under TCG every byte printed on the emulated 16550 UART costs time, and
#   kernel chatter could interleave with the marker lines.
readonly CMDLINE="console=ttyS0 panic=-1 quiet"
# Modules the guest needs, in the order we want them loaded. Dependencies of each
# are resolved from the .ko's own modinfo (depends=) and loaded first, and any
# module that is built into the kernel is skipped, so this list stays correct
# if Debian changes what is modular.
#   virtio_*            PCI transport, disk (vda) and NIC (for later networking)
#   failover/net_failover  required by virtio_net
#   button              ACPI power button -> `virsh shutdown` works
#   evdev               /dev/input/event* so busybox acpid can see the button
readonly WANTED_MODULES=(
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	failover net_failover virtio_net virtio_blk
	button evdev
)
readonly OUTPUTS=(vmlinuz initrd.img rootfs.qcow2 manifest.json)

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	printf 'Usage: %s OUTDIR\n' "${0##*/}" >&2
	exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage
OUTDIR=$1

# --- Idempotency: a complete image is left alone. manifest.json is moved into
# place last, so its presence together with the others means a finished build.
all_present=1
for f in "${OUTPUTS[@]}"; do
	[[ -s "$OUTDIR/$f" ]] || { all_present=0; break; }
done
if (( all_present )); then
	log "all outputs already present in $OUTDIR; nothing to do"
	exit 0
fi

# --- Build tools -----------------------------------------------------------

pkg_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# Install only what is missing. `apt-get update` is slow and touches global
# state, so it is only run when the install failed because the package lists
# are missing or stale (fresh containers ship without lists).
ensure_packages() {
	local missing=() p out
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	(( ${#missing[@]} )) || return 0
	[[ $EUID -eq 0 ]] || die "missing packages: ${missing[*]} (re-run as root to install them)"
	log "installing: ${missing[*]}"
	if out=$(apt_install "${missing[@]}" 2>&1); then
		return 0
	fi
	if grep -qE 'Unable to locate package|has no installation candidate|Failed to fetch|404 +Not Found' <<<"$out"; then
		log "package lists missing or stale; running apt-get update"
		apt-get update
		apt_install "${missing[@]}"
	else
		printf '%s\n' "$out" >&2
		die "apt-get install ${missing[*]} failed"
	fi
}

# busybox-static (not plain busybox): the same binary runs in the initramfs and
# in the guest root with no shared libraries to copy along.
ensure_packages busybox-static e2fsprogs qemu-utils cpio

BUSYBOX=$(dpkg -L busybox-static | grep -m1 -E '/s?bin/busybox$' || true)
[[ -n "$BUSYBOX" && -x "$BUSYBOX" ]] || die "cannot find the busybox-static binary"
for tool in mkfs.ext4 qemu-img cpio gzip dpkg-deb apt-get apt-cache; do
	command -v "$tool" >/dev/null || die "required tool not found: $tool"
done

# --- Scratch space -----------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cirrus-ami.XXXXXX")
STAGE_OUT=""
cleanup() {
	rm -rf -- "$WORK"
	[[ -z "$STAGE_OUT" ]] || rm -rf -- "$STAGE_OUT"
}
trap cleanup EXIT

# --- Kernel ----------------------------------------------------------------

# The meta package tracks the current ABI; we want the concrete package it
# points at (e.g. linux-image-6.1.0-56-cloud-amd64) so the manifest records
# exactly which kernel went into the image.
resolve_kernel_package() {
	apt-cache depends "$KERNEL_META" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

KERNEL_PKG=${CIRRUS_KERNEL_PACKAGE:-}
if [[ -z "$KERNEL_PKG" ]]; then
	KERNEL_PKG=$(resolve_kernel_package)
	if [[ -z "$KERNEL_PKG" ]]; then
		[[ $EUID -eq 0 ]] || die "cannot resolve $KERNEL_META (no apt lists?); run apt-get update"
		log "cannot resolve $KERNEL_META; running apt-get update"
		apt-get update
		KERNEL_PKG=$(resolve_kernel_package)
	fi
fi
[[ -n "$KERNEL_PKG" ]] || die "cannot determine the kernel package behind $KERNEL_META"
log "kernel package: $KERNEL_PKG"

mkdir -p "$WORK/dl" "$WORK/kernel"
# APT::Sandbox::User=root: apt normally drops to _apt for downloads, and _apt
# cannot write into our 0700 mktemp dir (that only produces a warning, but the
# warning is noise in every build log).
(cd "$WORK/dl" && apt-get -q -o APT::Sandbox::User=root download "$KERNEL_PKG") ||
	die "apt-get download $KERNEL_PKG failed"
debs=("$WORK"/dl/*.deb)
[[ -f "${debs[0]}" ]] || die "apt-get download produced no .deb"
dpkg-deb -x "${debs[0]}" "$WORK/kernel"

mapfile -t kvers < <(find "$WORK/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
[[ ${#kvers[@]} -eq 1 ]] || die "expected exactly one kernel version in $KERNEL_PKG, found: ${kvers[*]:-none}"
KVER=${kvers[0]}
KMODDIR="$WORK/kernel/lib/modules/$KVER"
[[ -f "$WORK/kernel/boot/vmlinuz-$KVER" ]] || die "no /boot/vmlinuz-$KVER in $KERNEL_PKG"

# --- Kernel modules (dependency-ordered) ------------------------------------

# The package ships no modules.dep (depmod runs in postinst, which we skip), and
# kmod may not be on the host, so dependencies are read straight from the
# modinfo strings embedded in each .ko.
declare -A MOD_PATH=()     # module name -> path of its .ko[.xz|.zst|.gz] in the package
while IFS= read -r -d '' f; do
	name=${f##*/}
	name=${name%%.ko*}
	MOD_PATH[${name//-/_}]=$f
done < <(find "$KMODDIR/kernel" -name '*.ko*' -print0)

declare -A BUILTIN=()
if [[ -f "$KMODDIR/modules.builtin" ]]; then
	while IFS= read -r f; do
		name=${f##*/}
		name=${name%.ko}
		BUILTIN[${name//-/_}]=1
	done <"$KMODDIR/modules.builtin"
fi

mkdir -p "$WORK/mods"
# Copy one module into $WORK/mods/NAME.ko, decompressed: busybox insmod cannot
# be relied on to understand compressed modules.
fetch_module() {
	local name=$1 src=${MOD_PATH[$1]} dst="$WORK/mods/$1.ko"
	case "$src" in
	*.ko) cp -- "$src" "$dst" ;;
	*.ko.xz) xz -dc -- "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc -- "$src" >"$dst" ;;
	*.ko.gz) gzip -dc -- "$src" >"$dst" ;;
	*) die "unknown module format: $src" ;;
	esac
}

module_deps() {
	# .modinfo is a run of NUL-terminated key=value strings.
	tr '\0' '\n' <"$WORK/mods/$1.ko" | grep -a -m1 '^depends=' | cut -d= -f2- | tr ',' ' '
}

declare -A MOD_STATE=()   # name -> visiting|resolved
LOAD_ORDER=()
add_module() {
	local name=${1//-/_} dep
	[[ "${MOD_STATE[$name]:-}" != resolved ]] || return 0
	[[ "${MOD_STATE[$name]:-}" != visiting ]] || die "module dependency cycle at $name"
	if [[ -n "${BUILTIN[$name]:-}" ]]; then
		MOD_STATE[$name]=resolved
		return 0
	fi
	[[ -n "${MOD_PATH[$name]:-}" ]] || die "module $name is neither built in nor shipped in $KERNEL_PKG"
	MOD_STATE[$name]=visiting
	fetch_module "$name"
	for dep in $(module_deps "$name"); do
		add_module "$dep"
	done
	MOD_STATE[$name]=resolved
	LOAD_ORDER+=("$name")
}
for m in "${WANTED_MODULES[@]}"; do
	add_module "$m"
done
# Root filesystem support: ext4 must be built in or become part of the list.
if [[ -z "${BUILTIN[ext4]:-}" ]]; then
	add_module ext4
fi
log "module load order: ${LOAD_ORDER[*]}"

# --- initramfs -----------------------------------------------------------------

install_busybox_tree() {
	# Applet symlinks are created at build time so both /init and the guest's
	# /sbin/init can use plain command names from the first line on. busybox's
	# own init/linuxrc applets are skipped: /init and /sbin/init are ours.
	local root=$1 applet
	mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
	cp -- "$BUSYBOX" "$root/bin/busybox"
	chmod 0755 "$root/bin/busybox"
	while IFS= read -r applet; do
		case "$applet" in
		sbin/init | linuxrc | bin/busybox) continue ;;
		esac
		mkdir -p "$root/$(dirname "$applet")"
		[[ -e "$root/$applet" || -L "$root/$applet" ]] || ln -s /bin/busybox "$root/$applet"
	done < <("$BUSYBOX" --list-full)
}

INITRD="$WORK/initrd"
mkdir -p "$INITRD"/{dev,proc,sys,newroot,etc,lib/modules}
install_busybox_tree "$INITRD"
for m in "${LOAD_ORDER[@]}"; do
	cp -- "$WORK/mods/$m.ko" "$INITRD/lib/modules/$m.ko"
done
printf '%s\n' "${LOAD_ORDER[@]}" >"$INITRD/etc/modules.order"

cat >"$INITRD/init" <<'EOF'
#!/bin/sh
# Cirrus test AMI initramfs /init (PID 1 until switch_root).
# Loads the kernel modules listed in /etc/modules.order, mounts the root disk
# read-write on /newroot and hands over to /newroot/sbin/init.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# The initramfs has no /dev/console node, so the kernel may have started us
# with no stdio at all; devtmpfs provides the node and we re-open it.
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys

fail() {
	echo "CIRRUS-INITRD-ERROR: $*; powering off"
	sync
	poweroff -f
	# PID 1 must never exit (that panics the kernel); wait for the power cut.
	while :; do sleep 60; done
}

while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/lib/modules/$mod.ko" || echo "cirrus-initrd: warning: insmod $mod failed"
done </etc/modules.order

root=/dev/vda
read -r cmdline </proc/cmdline
# Word splitting is intended: one kernel parameter per word.
for arg in $cmdline; do
	case "$arg" in
	root=/dev/*) root=${arg#root=} ;;
	esac
done

# Device nodes are created asynchronously by kdevtmpfs after virtio_blk
# probes; under TCG that can take a moment. Give it up to ~10 s.
i=0
while [ ! -b "$root" ] && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b "$root" ] || fail "root disk $root not found (is a virtio disk attached as vda?)"

mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root (ext4) on /newroot"
[ -x /newroot/sbin/init ] || fail "no executable /sbin/init on $root"

# Hand the already-populated pseudo filesystems over to the real root.
for fs in dev proc sys; do
	mkdir -p "/newroot/$fs"
	mount -o move "/$fs" "/newroot/$fs" || fail "cannot move /$fs to the new root"
done

exec switch_root /newroot /sbin/init
EOF
chmod 0755 "$INITRD/init"

mkdir -p "$WORK/out"
# newc is the only cpio format the kernel unpacks; -R 0:0 makes everything
# root-owned even when built by an unprivileged user; sorted input and gzip -n
# keep the archive reproducible.
(cd "$INITRD" && find . -print0 | LC_ALL=C sort -z |
	cpio --null --create --format=newc --owner=0:0 --quiet) |
	gzip -9 -n >"$WORK/out/initrd.img"

cp -- "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"

# --- root filesystem -----------------------------------------------------------

ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{dev,proc,sys,run,root,etc,var/lib/cirrus,var/log}
install -d -m 1777 "$ROOTFS/tmp"
install_busybox_tree "$ROOTFS"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\n' >"$ROOTFS/etc/group"

cat >"$ROOTFS/sbin/init" <<'EOF'
#!/bin/sh
# Cirrus test guest "OS". Runs as PID 1: counts boots on the root disk, reports
# the instance identity from SMBIOS on the serial console, then idles forever.
# No `set -e`: PID 1 must never exit, whatever fails.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
umask 022

is_mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }

# The Cirrus initrd moves these over already; mount them when booted otherwise.
[ -e /proc/mounts ] || mount -t proc -o nosuid,nodev,noexec proc /proc
is_mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
is_mounted /dev || mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# The boot counter needs a writable root (a no-op when the initrd mounted it rw).
mount -o remount,rw / 2>/dev/null
# Scratch space that must not land on the disk (acpid pid/log files).
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run

ifconfig lo 127.0.0.1 netmask 255.0.0.0 up

# libvirt puts the instance id into SMBIOS type 1 (system) serial.
instance_id() {
	id=$(tr -cd 'A-Za-z0-9._:-' </sys/class/dmi/id/product_serial 2>/dev/null)
	echo "${id:-unknown}"
}
ID=$(instance_id)
# The instance id doubles as the hostname (user-data can rely on it).
echo "$ID" >/proc/sys/kernel/hostname

# Boot counter persisted on the root disk: a reboot of the same disk must show
# n+1. Written to a temp file and renamed so a hard reset can't leave it torn.
COUNT_FILE=/var/lib/cirrus/boot-count
n=$(cat "$COUNT_FILE" 2>/dev/null)
case "$n" in '' | *[!0-9]*) n=0 ;; esac
n=$((n + 1))
mkdir -p /var/lib/cirrus
echo "$n" >"$COUNT_FILE.tmp" && mv -f "$COUNT_FILE.tmp" "$COUNT_FILE"
sync

# ACPI power button (`virsh shutdown`): acpid watches /dev/input/event* (the
# initrd loaded button + evdev) and runs /etc/acpi/PWRF/00000080.
if [ -x /etc/acpi/PWRF/00000080 ] && [ -e /sbin/acpid ]; then
	acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid ||
		echo "cirrus-init: warning: acpid failed to start; ACPI shutdown will not work"
fi

echo "CIRRUS-BOOT instance-id=$ID boot=$n"
sync

# Network, services and user-data run in the background: they must never delay
# (or, if they hang, block) the boot marker or PID 1's reaping loop.
/usr/lib/cirrus/network "$ID" </dev/null >/dev/console 2>&1 &

# Idle forever. Waiting on a child (rather than a busy loop) also lets the
# shell reap orphaned processes re-parented to PID 1.
while :; do
	sleep 3600 &
	wait $!
done
EOF
chmod 0755 "$ROOTFS/sbin/init"

# --- guest networking, services, metadata/user-data ---------------------------

mkdir -p "$ROOTFS/usr/lib/cirrus" "$ROOTFS/etc/udhcpc"
cat >"$ROOTFS/usr/lib/cirrus/network" <<'EOF'
#!/bin/sh
# Cirrus test guest: network bring-up, services and user-data. Started in the
# background by /sbin/init after CIRRUS-BOOT, with stdout/stderr on the console.
# Usage: network INSTANCE_ID
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
ID=${1:-unknown}
IFACE=eth0
RUN=/run/cirrus
LEASE=$RUN/lease            # "<addr/prefix> <router>", written by the udhcpc script
NET_TIMEOUT=30              # seconds to wait for a lease before ip=none
MD=http://169.254.169.254/latest
USERDATA=/var/lib/cirrus/user-data
cd / || exit 1
mkdir -p "$RUN" /run/www
echo "$ID" >"$RUN/instance-id"

# --- services (listen on all addresses, so they can start before DHCP) ---
echo "$ID" >/run/www/index.html
httpd -p 80 -h /run/www || echo "cirrus-net: warning: httpd failed to start"
# -ll: keep listening; one forked /usr/lib/cirrus/port8080 per connection.
nc -ll -p 8080 -e /usr/lib/cirrus/port8080 </dev/null >/dev/null 2>&1 &

uptime_s() {
	read -r up _ </proc/uptime
	echo "${up%%.*}"
}

# --- DHCP, supervised ---
# The host may replace eth0 while the guest runs: when a NIC's tap device is
# deleted on the host, the agent hot-unplugs the NIC and plugs the same one
# (same MAC) back in, and a new eth0 appears. udhcpc holds on to the old
# interface, so this loop restarts it whenever eth0's interface index changes
# or udhcpc exits, and reports each lease after the first (which the main flow
# below reports) as another CIRRUS-NET line. Runs for the guest's lifetime.

# Sets idx to eth0's interface index, empty while there is no eth0 (no fork:
# this runs twice a second for the guest's lifetime).
ifindex() {
	idx=
	[ -r "/sys/class/net/$IFACE/ifindex" ] && read -r idx 2>/dev/null <"/sys/class/net/$IFACE/ifindex"
}

dhcp_supervisor() {
	generation=0
	while :; do
		ifindex
		if [ -z "$idx" ]; then
			sleep 0.2
			continue
		fi
		current=$idx
		generation=$((generation + 1))
		rm -f "$LEASE"
		ip link set "$IFACE" up
		# Renews the lease in the foreground (of this background job); retries
		# forever: 5 discovers 1 s apart, then a 2 s pause. Its chatter goes to
		# a log, not the console (every console byte is slow under TCG).
		udhcpc -f -i "$IFACE" -s /etc/udhcpc/default.script -t 5 -T 1 -A 2 \
			</dev/null >>"$RUN/udhcpc.log" 2>&1 &
		pid=$!
		reported=
		[ "$generation" -gt 1 ] || reported=yes
		while kill -0 "$pid" 2>/dev/null; do
			ifindex
			[ "$idx" = "$current" ] || break
			if [ -z "$reported" ] && [ -s "$LEASE" ] && read -r addr gw <"$LEASE"; then
				echo "CIRRUS-NET instance-id=$ID ip=$addr gw=${gw:-none}"
				reported=yes
			fi
			sleep 0.5
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		# udhcpc exited by itself with eth0 unchanged: do not spin.
		ifindex
		[ "$idx" = "$current" ] && sleep 1
	done
}

i=0
while [ ! -e "/sys/class/net/$IFACE" ] && [ "$i" -lt 20 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -e "/sys/class/net/$IFACE" ]; then
	echo "CIRRUS-NET instance-id=$ID ip=none"
	echo "CIRRUS-USERDATA-NONE instance-id=$ID"
	exit 0
fi
rm -f "$LEASE"
dhcp_supervisor </dev/null &

deadline=$(($(uptime_s) + NET_TIMEOUT))
while [ ! -s "$LEASE" ] && [ "$(uptime_s)" -lt "$deadline" ]; do
	sleep 0.1
done
addr=
[ -s "$LEASE" ] && read -r addr gw <"$LEASE"
if [ -z "$addr" ]; then
	# udhcpc keeps trying in the background; a late lease is applied silently.
	echo "CIRRUS-NET instance-id=$ID ip=none"
	echo "CIRRUS-USERDATA-NONE instance-id=$ID"
	exit 0
fi
echo "CIRRUS-NET instance-id=$ID ip=$addr gw=${gw:-none}"

# --- metadata service ---
# fetch PATH OUT TRIES: 0 = fetched, 1 = HTTP 404 (definitive), 2 = gave up.
# busybox 1.35's wget -T crashes, so `timeout` bounds each attempt instead.
fetch() {
	t=0
	while [ "$t" -lt "$3" ]; do
		if timeout 5 wget -q -O "$2.tmp" "$MD/$1" 2>"$RUN/wget.err"; then
			mv -f "$2.tmp" "$2"
			return 0
		fi
		rm -f "$2.tmp"
		grep -q ' 404 ' "$RUN/wget.err" && return 1
		t=$((t + 1))
		[ "$t" -lt "$3" ] && sleep 1
	done
	return 2
}

tries=5
md_id=none
fetch meta-data/instance-id "$RUN/md-instance-id" "$tries"
case $? in
0)
	md_id=$(head -n 1 "$RUN/md-instance-id" | tr -cd 'A-Za-z0-9._:-')
	md_id=${md_id:-none}
	;;
2) tries=1 ;; # metadata unreachable: don't spend another 30 s on user-data
esac
echo "CIRRUS-METADATA instance-id=$ID metadata-instance-id=$md_id"

# --- user-data: a "#!" script runs once per boot ---
first=
if fetch user-data "$RUN/user-data" "$tries"; then
	IFS= read -r first <"$RUN/user-data"
fi
case "$first" in
'#!'*)
	if [ ! -e "$RUN/user-data.done" ]; then
		: >"$RUN/user-data.done"
		mv -f "$RUN/user-data" "$USERDATA.tmp" && chmod 0755 "$USERDATA.tmp" &&
			mv -f "$USERDATA.tmp" "$USERDATA"
		sync
		echo "CIRRUS-USERDATA-BEGIN instance-id=$ID"
		"$USERDATA" </dev/null
		rc=$?
		echo "CIRRUS-USERDATA-END instance-id=$ID rc=$rc"
	fi
	;;
*) echo "CIRRUS-USERDATA-NONE instance-id=$ID" ;;
esac
EOF

cat >"$ROOTFS/usr/lib/cirrus/port8080" <<'EOF'
#!/bin/sh
# Per-connection handler for the TCP 8080 listener (nc -ll -e): one banner line.
read -r id </run/cirrus/instance-id
echo "cirrus-8080 ${id:-unknown}"
EOF

cat >"$ROOTFS/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# busybox udhcpc event script: address, prefix and default route via the DHCP
# router option. No DNS. Records "<addr/prefix> <router>" for /usr/lib/cirrus/network.
# udhcpc passes the lease in the environment (interface, ip, mask, router, ...).
# shellcheck disable=SC2154
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
LEASE=/run/cirrus/lease

case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	rm -f "$LEASE"
	;;
bound | renew)
	prefix=${mask:-24}
	# Only touch the address when it changed, so renewals don't drop connections.
	if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$prefix "; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/$prefix" ${broadcast:+broadcast "$broadcast"} dev "$interface"
	fi
	gw=
	# $router may list several gateways; the first one is the default route.
	for r in $router; do
		gw=$r
		break
	done
	if [ -n "$gw" ]; then
		ip route replace default via "$gw" dev "$interface"
	fi
	echo "$ip/$prefix ${gw:-none}" >"$LEASE.tmp" && mv -f "$LEASE.tmp" "$LEASE"
	;;
esac
exit 0
EOF
chmod 0755 "$ROOTFS/usr/lib/cirrus/network" "$ROOTFS/usr/lib/cirrus/port8080" \
	"$ROOTFS/etc/udhcpc/default.script"

if "$BUSYBOX" --list | grep -qx acpid; then
	mkdir -p "$ROOTFS/etc/acpi/PWRF"
	cat >"$ROOTFS/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# ACPI power button handler (run by busybox acpid): clean, immediate power-off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
id=$(tr -cd 'A-Za-z0-9._:-' </sys/class/dmi/id/product_serial 2>/dev/null)
echo "CIRRUS-SHUTDOWN instance-id=${id:-unknown}" >/dev/console
sync
# Leave the filesystem clean (no journal replay next boot); best effort.
mount -o remount,ro / 2>/dev/null
sync
poweroff -f
EOF
	chmod 0755 "$ROOTFS/etc/acpi/PWRF/00000080"
else
	log "warning: busybox has no acpid applet; the guest will ignore the ACPI power button"
fi

# mkfs.ext4 -d populates the filesystem from a directory, so no loop mount (and
# no privileges) are needed. The ext4 features are mke2fs defaults, which the
# kernel we ship supports.
truncate -s "$ROOTFS_SIZE" "$WORK/rootfs.raw"
mkfs.ext4 -q -F -L cirrus-root -E root_owner=0:0 -d "$ROOTFS" "$WORK/rootfs.raw"
qemu-img convert -q -f raw -O qcow2 "$WORK/rootfs.raw" "$WORK/out/rootfs.qcow2"

# --- manifest & publish --------------------------------------------------------

json_escape() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '%s' "$s"
}
printf '{"kernel":"vmlinuz","ramdisk":"initrd.img","root":"rootfs.qcow2","cmdline":"%s","kernelPackage":"%s"}\n' \
	"$(json_escape "$CMDLINE")" "$(json_escape "$KERNEL_PKG")" >"$WORK/out/manifest.json"

# Stage inside OUTDIR (same filesystem) so each final step is a rename; the
# manifest goes last, so an interrupted publish is seen as incomplete and rebuilt.
mkdir -p "$OUTDIR"
STAGE_OUT=$(mktemp -d "$OUTDIR/.build.XXXXXX")
for f in "${OUTPUTS[@]}"; do
	cp -- "$WORK/out/$f" "$STAGE_OUT/$f"
	chmod 0644 "$STAGE_OUT/$f"
done
for f in "${OUTPUTS[@]}"; do
	mv -f -- "$STAGE_OUT/$f" "$OUTDIR/$f"
done
rmdir -- "$STAGE_OUT"
STAGE_OUT=""

log "built test AMI in $OUTDIR (kernel $KERNEL_PKG, modules: ${LOAD_ORDER[*]})"
