#!/usr/bin/env bash
# The tutorial walk-through, step by step, on a lab of this machine (run as root):
#   bash netns-labs/tutorial.sh            # uses the podnet in .venv/bin if there is one
# Each step prints the command, as you would type it, then what it answered.
set -euo pipefail
cd "$(dirname "$0")/.."
PODNET=${PODNET:-$( [ -x .venv/bin/podnet ] && echo .venv/bin/podnet || echo podnet )}
LAB=${LAB:-tutorial}
run() { echo; echo "\$ podnet lab $*"; "$PODNET" lab --lab "$LAB" "$@"; }
trap 'echo; echo "\$ podnet lab down $LAB"; "$PODNET" lab down "$LAB"' EXIT

echo "\$ podnet lab up netns-labs/tutorial.yaml --name $LAB"
"$PODNET" lab up netns-labs/tutorial.yaml --name "$LAB"
run get pods -o wide -L app
run get services -o wide
run get endpoints

backend=$("$PODNET" lab --lab "$LAB" get pods -l app=backend -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["name"])')
# 1. the frontend through its Service, from a pod; and through the NodePort, from outside the nodes
run curl svc/frontend --from "pod/$backend" -n 6
run curl node1:30080 -n 30 --summary

# 2. kill a pod: the Deployment replaces it, the endpoints follow
victim=$("$PODNET" lab --lab "$LAB" get pods -l app=frontend -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["name"])')
run delete "pod/$victim"
sleep 3
run get pods -l app=frontend
run curl svc/frontend --from "pod/$backend" -n 30 --summary

# 3. scale out and back in
run scale deploy/frontend --replicas 6
run curl node2:30080 -n 60 --summary
run scale deploy/frontend --replicas 3

# 4. a canary: one v2 pod next to three v1 pods takes about a quarter of the requests
run apply -f netns-labs/canary.yaml
run get pods -l app=frontend -L version -L track
run curl node3:30080 -n 400 --summary
run delete deploy/frontend-canary

# 5. a rolling update under a steady request loop: not one request fails
"$PODNET" lab --lab "$LAB" curl svc/frontend --from "pod/$backend" --duration 12 --interval 0.01 --summary > /tmp/podnet-$LAB-loop.$$ &
loop=$!
sleep 1
run rollout deploy/frontend --version v2
wait "$loop" || true
echo; echo "requests during the rollout:"; cat /tmp/podnet-$LAB-loop.$$; rm -f /tmp/podnet-$LAB-loop.$$
run get pods -l app=frontend -L version

# 6. and back
run rollout undo deploy/frontend
run curl svc/frontend -n 3
