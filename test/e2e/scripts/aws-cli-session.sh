#!/usr/bin/env bash
# A whole aws CLI session against Cirrus: Debian's aws CLI v2, unchanged, with
# its profile (AWS_PROFILE, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE
# name the "cirrus" profile `npm run up` writes) and --endpoint-url: Debian
# 12's aws CLI (2.9) predates endpoint_url in the config file (2.13).
# Every step checks what it got; the first mismatch fails the script.
# Environment: ENDPOINT (the Query API), IMAGE_NAME (a registered image),
# WORK (a scratch directory).
set -euo pipefail
aws() { /usr/bin/aws --endpoint-url "$ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { [[ $2 == "$3" ]] || fail "$1: expected '$3', got '$2'"; }
step() { echo "== $*" >&2; }

step describe-regions
expect region "$(aws ec2 describe-regions --query 'Regions[].RegionName' --output text)" lab-1
step describe-availability-zones
expect zone "$(aws ec2 describe-availability-zones --query 'AvailabilityZones[].[ZoneName,State]' --output text)" "lab-1a	available"
step describe-images
image=$(aws ec2 describe-images --owners self --filters "Name=name,Values=$IMAGE_NAME" --query 'Images[0].ImageId' --output text)
[[ $image == ami-* ]] || fail "no image named $IMAGE_NAME: $image"
step sts get-caller-identity
expect account "$(aws sts get-caller-identity --query Account --output text)" 123456789012

step create-key-pair
aws ec2 create-key-pair --key-name session --query KeyMaterial --output text >"$WORK/session.pem"
grep -q -- "-----BEGIN" "$WORK/session.pem" || fail "no private key in create-key-pair's answer"
step create-security-group
sg=$(aws ec2 create-security-group --group-name session --description "aws CLI session" --query GroupId --output text)
[[ $sg == sg-* ]] || fail "create-security-group: $sg"
aws ec2 authorize-security-group-ingress --group-id "$sg" --protocol tcp --port 22 --cidr 10.0.0.0/8 >/dev/null
expect ingress "$(aws ec2 describe-security-groups --group-ids "$sg" --query 'SecurityGroups[0].IpPermissions[0].[IpProtocol,FromPort,ToPort,IpRanges[0].CidrIp]' --output text)" "tcp	22	22	10.0.0.0/8"

step run-instances
printf '#!/bin/sh\necho session-user-data\n' >"$WORK/user-data.sh"
read -r -a ids <<<"$(aws ec2 run-instances --image-id "$image" --instance-type t2.nano --count 2 --key-name session \
	--security-group-ids "$sg" --user-data "file://$WORK/user-data.sh" \
	--tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=session}]' --query 'Instances[].InstanceId' --output text)"
expect "instances launched" "${#ids[@]}" 2
step wait instance-running
aws ec2 wait instance-running --instance-ids "${ids[@]}"
step describe-instances with filters and --query
running=$(aws ec2 describe-instances --filters Name=tag:Name,Values=session Name=instance-state-name,Values=running \
	--query 'Reservations[].Instances[].InstanceId' --output text | tr '\t' '\n' | sort | tr '\n' ' ')
expect "running instances" "$running" "$(printf '%s\n' "${ids[@]}" | sort | tr '\n' ' ')"
expect "user data" "$(aws ec2 describe-instance-attribute --instance-id "${ids[0]}" --attribute userData --query UserData.Value --output text | base64 -d)" "$(cat "$WORK/user-data.sh")"
step get-console-output
# The output is read whole before it is searched: `aws … | grep -q` would let
# grep close the pipe early, and under pipefail the aws CLI's broken pipe fails the step.
booted() { local out; out=$(aws ec2 get-console-output --instance-id "${ids[0]}" --output text --query Output) && [[ $out == *"CIRRUS-BOOT instance-id=${ids[0]}"* ]]; }
for _ in $(seq 120); do booted && break; sleep 1; done
booted || fail "no boot line on the console"

step elastic IP
alloc=$(aws ec2 allocate-address --domain vpc --query AllocationId --output text)
assoc=$(aws ec2 associate-address --allocation-id "$alloc" --instance-id "${ids[0]}" --query AssociationId --output text)
[[ $assoc == eipassoc-* ]] || fail "associate-address: $assoc"
expect "address's instance" "$(aws ec2 describe-addresses --allocation-ids "$alloc" --query 'Addresses[0].InstanceId' --output text)" "${ids[0]}"
aws ec2 disassociate-address --association-id "$assoc"
expect "address's instance after disassociate" "$(aws ec2 describe-addresses --allocation-ids "$alloc" --query 'Addresses[0].InstanceId' --output text)" None
aws ec2 release-address --allocation-id "$alloc"

step tags
aws ec2 create-tags --resources "${ids[0]}" --tags Key=env,Value=session
expect tag "$(aws ec2 describe-tags --filters "Name=resource-id,Values=${ids[0]}" Name=key,Values=env --query 'Tags[0].Value' --output text)" session

step "volumes and snapshots with the CLI's waiters"
vol=$(aws ec2 create-volume --availability-zone lab-1a --size 1 --volume-type gp3 \
	--tag-specifications 'ResourceType=volume,Tags=[{Key=Name,Value=session}]' --query VolumeId --output text)
[[ $vol == vol-* ]] || fail "create-volume: $vol"
aws ec2 wait volume-available --volume-ids "$vol"
expect "volume" "$(aws ec2 describe-volumes --filters Name=tag:Name,Values=session --query 'Volumes[0].[VolumeId,Size,VolumeType,Iops,Throughput]' --output text)" "$vol	1	gp3	3000	125"
aws ec2 attach-volume --volume-id "$vol" --instance-id "${ids[0]}" --device /dev/sdf >/dev/null
aws ec2 wait volume-in-use --volume-ids "$vol"
attached() { [[ $(aws ec2 describe-volumes --volume-ids "$vol" --query 'Volumes[0].Attachments[0].[InstanceId,Device,State]' --output text) == "${ids[0]}	/dev/sdf	attached" ]]; }
for _ in $(seq 60); do attached && break; sleep 1; done
attached || fail "the volume did not become attached"
snap=$(aws ec2 create-snapshot --volume-id "$vol" --description session --query SnapshotId --output text)
aws ec2 wait snapshot-completed --snapshot-ids "$snap"
# The CLI signs a presigned URL and sets DestinationRegion itself, as for any copy.
copy=$(aws ec2 copy-snapshot --source-snapshot-id "$snap" --source-region lab-1 --query SnapshotId --output text)
aws ec2 wait snapshot-completed --snapshot-ids "$copy"
expect "own snapshots" "$(aws ec2 describe-snapshots --owner-ids self --snapshot-ids "$snap" "$copy" --query 'length(Snapshots)' --output text)" 2
restored=$(aws ec2 create-volume --availability-zone lab-1a --snapshot-id "$copy" --query VolumeId --output text)
aws ec2 wait volume-available --volume-ids "$restored"
expect "restored volume" "$(aws ec2 describe-volumes --volume-ids "$restored" --query 'Volumes[0].[Size,SnapshotId]' --output text)" "1	$copy"
aws ec2 detach-volume --volume-id "$vol" >/dev/null
aws ec2 wait volume-available --volume-ids "$vol"
aws ec2 delete-volume --volume-id "$vol"
aws ec2 delete-volume --volume-id "$restored"
aws ec2 wait volume-deleted --volume-ids "$vol" "$restored"
aws ec2 delete-snapshot --snapshot-id "$snap"
aws ec2 delete-snapshot --snapshot-id "$copy"
expect "snapshots left" "$(aws ec2 describe-snapshots --owner-ids self --query 'length(Snapshots)' --output text)" 0

step "stop, start, terminate with the CLI's waiters"
aws ec2 stop-instances --instance-ids "${ids[0]}" >/dev/null
aws ec2 wait instance-stopped --instance-ids "${ids[0]}"
aws ec2 start-instances --instance-ids "${ids[0]}" >/dev/null
aws ec2 wait instance-running --instance-ids "${ids[0]}"
aws ec2 terminate-instances --instance-ids "${ids[@]}" >/dev/null
aws ec2 wait instance-terminated --instance-ids "${ids[@]}"
echo "aws CLI session: ok" >&2
