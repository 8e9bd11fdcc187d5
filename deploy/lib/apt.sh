# shellcheck shell=bash
# apt_install PKG… — install the Debian packages that are missing, running
# apt-get update only when the install fails for lack of package lists.
apt_install() {
	local missing=() p
	for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
	((${#missing[@]})) || return 0
	printf 'installing %s\n' "${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	}
}
