#!/usr/bin/env bash
# demo.sh — with the stack up: register the test AMI (once) and make sure a
# demo instance tagged Name=cirrus-demo is running, then show its boot line.
set -euo pipefail
cd "$(dirname "$0")/.."
# Resolved: images/test-ami is a symlink that moves when the AMI is rebuilt.
AMI_DIR=$(readlink -f "${CIRRUS_TEST_AMI_DIR:-/var/lib/cirrus/images/test-ami}")
readonly AMI_DIR
log() { printf 'cirrus-demo: %s\n' "$*" >&2; }
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=new Function("r","return "+process.argv[1])(JSON.parse(s));console.log(v??"")})' "$1"; }

image_id=$(npx cirrus describe-images --filters "Name=name,Values=cirrus-test-ami" | json 'r.Images?.[0]?.ImageId')
if [[ -z $image_id ]]; then
	cmdline=$(json 'r.cmdline' <"$AMI_DIR/manifest.json")
	image_id=$(npx cirrus register-image --name cirrus-test-ami --description "Cirrus test AMI (busybox)" \
		--image-location "$AMI_DIR/rootfs.qcow2" --kernel-location "$AMI_DIR/vmlinuz" --ramdisk-location "$AMI_DIR/initrd.img" \
		--kernel-command-line "$cmdline" --block-device-mappings 'DeviceName=/dev/vda,Ebs={VolumeSize=1}' | json 'r.ImageId')
	log "registered $image_id"
fi
demo() { npx cirrus describe-instances --filters "Name=tag:Name,Values=cirrus-demo" "Name=instance-state-name,Values=pending,running,stopping,stopped" | json "r.Reservations?.[0]?.Instances?.[0]?.$1"; }
instance_id=$(demo InstanceId)
# A demo on its way to stopped is started once it is there.
for _ in $(seq 120); do [[ $(demo State.Name) == stopping ]] || break; sleep 1; done
# One token per run of this script: retries within it never launch twice,
# and a demo terminated since an earlier run is replaced, not returned again.
token="cirrus-demo-$(date +%s)-$RANDOM"
# The local agent needs a few seconds to probe the hypervisor and enrol: until
# then there is no capacity, so retry on InsufficientInstanceCapacity only.
for _ in $(seq 60); do
	[[ -n $instance_id ]] && break
	if out=$(npx cirrus run-instances --image-id "$image_id" --instance-type t2.micro --count 1 \
		--client-token "$token" \
		--tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=cirrus-demo}]' 2>/tmp/cirrus-demo.err); then
		instance_id=$(json 'r.Instances[0].InstanceId' <<<"$out")
		log "launched $instance_id"
	elif grep -q InsufficientInstanceCapacity /tmp/cirrus-demo.err; then
		sleep 2
	else
		cat /tmp/cirrus-demo.err >&2
		exit 1
	fi
done
[[ -n $instance_id ]] || { log "no host took the demo instance; see /var/log/cirrus/agent.log"; exit 1; }
npx cirrus start-instances --instance-ids "$instance_id" --wait >/dev/null
# After a restart the local agent answers only once it has enrolled again:
# until then the console is unavailable, which is not worth printing.
for _ in $(seq 120); do
	line=$(npx cirrus get-console-output --instance-id "$instance_id" --output text 2>/tmp/cirrus-demo.err | grep -m1 CIRRUS-BOOT || true)
	[[ -n $line ]] && break
	sleep 1
done
[[ -n $line ]] || cat /tmp/cirrus-demo.err >&2
log "demo instance $instance_id is running; console: ${line:-<no boot line yet>}"
