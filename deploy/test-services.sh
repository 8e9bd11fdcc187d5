#!/usr/bin/env bash
# test-services.sh — print `export` lines that point the tests at a working
# PostgreSQL (a role allowed to create databases) and Redis, installing and
# starting local ones when needed. Usage: eval "$(deploy/test-services.sh)"
set -euo pipefail
cd "$(dirname "$0")"
source lib/apt.sh
source lib/services.sh
exec 3>&1 1>&2
apt_install postgresql-client openssh-server openssh-client binutils curl dnsmasq-base awscli python3-boto3 jq

admin_url=${CIRRUS_TEST_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if ! psql "$admin_url" -qtAc 'SELECT 1' >/dev/null 2>&1; then
	ensure_postgres_running
	if ! psql "$admin_url" -qtAc 'SELECT 1' >/dev/null 2>&1; then
		# No trust auth here (a stock Debian install): use a password role.
		install -d -m 0755 /etc/cirrus
		[[ -f /etc/cirrus/test.env ]] || (umask 077; echo "CIRRUS_TEST_DB_PASSWORD=$(random_secret 32)" >/etc/cirrus/test.env)
		source /etc/cirrus/test.env
		ensure_pg_role cirrus_test "$CIRRUS_TEST_DB_PASSWORD" SUPERUSER
		admin_url="postgres://cirrus_test:${CIRRUS_TEST_DB_PASSWORD}@127.0.0.1:5432/postgres"
	fi
fi
redis_url=${CIRRUS_TEST_REDIS_URL:-redis://127.0.0.1:6379}
[[ -n ${CIRRUS_TEST_REDIS_URL:-} ]] || ensure_redis
printf 'export CIRRUS_TEST_ADMIN_DATABASE_URL=%q CIRRUS_TEST_REDIS_URL=%q\n' "$admin_url" "$redis_url" >&3
