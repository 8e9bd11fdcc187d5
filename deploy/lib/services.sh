# shellcheck shell=bash
# Local Redis and PostgreSQL for the all-in-one stack and the tests, when the
# operator has not pointed Cirrus at their own (REDIS_URL / DATABASE_URL).
# Works with and without systemd. Needs lib/apt.sh.

ensure_redis() {
	apt_install redis-server redis-tools
	redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0
	if [[ -d /run/systemd/system ]]; then
		systemctl enable --now redis-server
	else
		install -d -o redis -g redis /var/lib/redis /var/log/redis 2>/dev/null || install -d /var/lib/redis /var/log/redis
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir /var/lib/redis --logfile /var/log/redis/redis-server.log
	fi
	for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "redis did not come up" >&2
	return 1
}

ensure_postgres_running() {
	pg_isready -q -h 127.0.0.1 2>/dev/null && return 0
	apt_install postgresql
	local version
	version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
	[[ -n $version ]] || { echo "no PostgreSQL cluster found" >&2; return 1; }
	if [[ -d /run/systemd/system ]]; then systemctl enable --now postgresql; else pg_ctlcluster --skip-systemctl-redirect "$version" main start; fi
	for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 && return 0; sleep 0.2; done
	echo "postgresql did not come up" >&2
	return 1
}

# psql as the postgres superuser through the local socket (peer auth).
pg_admin() { runuser -u postgres -- psql -qtA "$@"; }

# ensure_pg_role NAME PASSWORD [SUPERUSER]
ensure_pg_role() {
	pg_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$1'" | grep -q 1 ||
		pg_admin -c "CREATE ROLE $1 LOGIN ${3:-} PASSWORD '$2'"
}

# A random alphanumeric secret of length $1.
random_secret() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
