#!/usr/bin/env bash
# up.sh (`npm run up`) — install what is missing and run the all-in-one Cirrus
# stack in the foreground: api + worker + one local host agent, with the test
# AMI registered and a demo instance booted. Ctrl-C stops the services (the
# demo instance's VM keeps running under libvirt and is found again next time).
#
# Postgres: DATABASE_URL when set; otherwise a local PostgreSQL from Debian's
# packages, with a `cirrus` role and database. Redis: REDIS_URL when set;
# otherwise a local redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly ENV_FILE=/etc/cirrus/cirrus.env
readonly LOG_DIR=/var/log/cirrus
log() { printf 'cirrus-up: %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { log "must run as root (it installs packages and drives libvirt)"; exit 1; }
source deploy/lib/apt.sh
source deploy/lib/services.sh

# Secrets generated once and kept root-only; never printed.
ensure_env_file() {
	install -d -m 0755 /etc/cirrus
	if [[ ! -f $ENV_FILE ]]; then
		(umask 077; printf 'CIRRUS_ENROLMENT_TOKEN=%s\nCIRRUS_DB_PASSWORD=%s\n' "$(random_secret 40)" "$(random_secret 32)" >"$ENV_FILE")
	fi
	set -a; source "$ENV_FILE"; set +a
}

ensure_database() {
	if [[ -n ${DATABASE_URL:-} ]]; then return 0; fi
	ensure_postgres_running
	ensure_pg_role cirrus "$CIRRUS_DB_PASSWORD"
	pg_admin -c "SELECT 1 FROM pg_database WHERE datname = 'cirrus'" | grep -q 1 || pg_admin -c "CREATE DATABASE cirrus OWNER cirrus"
	export DATABASE_URL="postgres://cirrus:${CIRRUS_DB_PASSWORD}@127.0.0.1:5432/cirrus"
}

pids=()
stop_all() {
	log "stopping services"
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
}

run_service() { # name script
	node "$2" >>"$LOG_DIR/$1.log" 2>&1 &
	pids+=($!)
	log "$1 started (pid $!, log $LOG_DIR/$1.log)"
}

# Elastic IPs out of the box: unless the operator configured a pool
# (CIRRUS_ADDRESS_POOL, also when set empty), the demo's is TEST-NET-2, kept
# host-only by a blackhole route: a packet to it that no elastic IP DNATs
# to a guest ends on this host instead of leaving it by the default route.
readonly DEMO_ADDRESS_POOL=198.51.100.0/24
ensure_demo_address_pool() {
	[[ -z ${CIRRUS_ADDRESS_POOL+set} ]] || return 0
	export CIRRUS_ADDRESS_POOL=$DEMO_ADDRESS_POOL
	ip route replace blackhole "$DEMO_ADDRESS_POOL"
}

# Starts the local agent and returns once it has registered in this run
# (it rewrites its host.json at every registration), so the host is alive
# with its capacity before anything is launched on it.
wait_for_agent() { # script
	local state="${CIRRUS_STATE_DIR:-/var/lib/cirrus/agent}/host.json" marker="$LOG_DIR/.agent-starting"
	touch "$marker"
	run_service agent "$1"
	for _ in $(seq 240); do
		[[ $state -nt $marker ]] && { log "local host enrolled"; return 0; }
		sleep 0.5
	done
	log "the local agent did not register within 2 minutes; see $LOG_DIR/agent.log"
	exit 1
}

# The account named "default" (id 123456789012, which owns what was made
# before accounts existed) and a working key of it as the aws CLI profile
# "cirrus" in ~/.aws: kept across starts, replaced if its key is gone.
readonly DEFAULT_ACCOUNT_ID=123456789012
ensure_default_account() {
	local admin=services/api/bin/cirrus-admin.js
	# The API migrates the schema as it starts; the accounts table exists once it has.
	for _ in $(seq 120); do node "$admin" describe-accounts >/dev/null 2>&1 && break; sleep 0.5; done
	node "$admin" describe-accounts --account default >/dev/null 2>&1 ||
		node "$admin" create-account --name default --account-id "$DEFAULT_ACCOUNT_ID" >/dev/null
	node "$admin" ensure-aws-profile --account default --profile cirrus --endpoint-url "http://${CIRRUS_QUERY_LISTEN:-127.0.0.1:8773}" >/dev/null
	export AWS_PROFILE=cirrus
	log "aws CLI profile 'cirrus' (account $DEFAULT_ACCOUNT_ID) in ~/.aws/credentials and ~/.aws/config"
}

main() {
	[[ -d node_modules ]] || npm ci --no-audit --no-fund
	npm run build
	bash deploy/prepare-host.sh
	# The aws CLI, for the Query API (Debian's: v2).
	apt_install awscli
	ensure_env_file
	ensure_demo_address_pool
	[[ -n ${REDIS_URL:-} ]] || { ensure_redis; export REDIS_URL=redis://127.0.0.1:6379; }
	ensure_database
	install -d -m 0755 "$LOG_DIR"
	trap stop_all EXIT
	trap 'exit 130' INT TERM
	run_service api services/api/dist/main.js
	ensure_default_account
	for _ in $(seq 120); do npx cirrus describe-regions >/dev/null 2>&1 && break; sleep 0.5; done
	run_service worker services/worker/dist/main.js
	wait_for_agent agents/host-agent/dist/main.js
	bash deploy/demo.sh
	log "stack running: gRPC on ${CIRRUS_API_LISTEN:-127.0.0.1:50051}, the EC2 Query API on http://${CIRRUS_QUERY_LISTEN:-127.0.0.1:8773}; try 'npx cirrus --profile cirrus describe-instances' or 'aws --profile cirrus --endpoint-url http://${CIRRUS_QUERY_LISTEN:-127.0.0.1:8773} ec2 describe-instances' in another terminal. Ctrl-C stops."
	wait -n "${pids[@]}"
	log "a service exited; see $LOG_DIR"
	exit 1
}

main "$@"
