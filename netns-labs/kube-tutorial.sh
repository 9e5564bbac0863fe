#!/usr/bin/env bash
# The Kubernetes tutorial, with its manifests unchanged, on a lab of this machine (run as root):
#   bash netns-labs/kube-tutorial.sh       # uses the podnet in .venv/bin if there is one
# Every step is the kubectl command a tutorial shows, spelled `podnet lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
PODNET=${PODNET:-$( [ -x .venv/bin/podnet ] && echo .venv/bin/podnet || echo podnet )}
LAB=${LAB:-kube}
M=netns-labs/tutorial
run() { echo; echo "\$ kubectl $*"; "$PODNET" lab --lab "$LAB" "$@"; }
trap 'echo; echo "\$ podnet lab down $LAB"; "$PODNET" lab down "$LAB"' EXIT

echo "\$ podnet lab up netns-labs/kube-tutorial.yaml --name $LAB"
"$PODNET" lab up netns-labs/kube-tutorial.yaml --name "$LAB"

# 1. the backend (redis) and the frontend behind a LoadBalancer
run apply -f $M/backend.yaml
run apply -f $M/frontend.yaml
run get pods -o wide
run get svc
lb=$("$PODNET" lab --lab "$LAB" get svc frontend -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["loadBalancer"]["ingress"][0]["ip"])')

# 2. the frontend finds the backend by its name, through the cluster DNS
pod=$("$PODNET" lab --lab "$LAB" get pods -l app=frontend -o name | head -1 | cut -d/ -f2)
run exec "pod/$pod" -- getent hosts redis
run exec "pod/$pod" -- cat /etc/resolv.conf

# 3. from outside the cluster, at the EXTERNAL-IP: load-balanced over the three pods
run curl "http://$lb/" -n 30 --summary

# a steady load from outside runs through every step that follows
"$PODNET" lab --lab "$LAB" curl "http://$lb/" --duration 60 --interval 0.02 --summary > /tmp/podnet-$LAB-load.$$ &
load=$!

# 4. delete a pod: the Deployment replaces it
run delete pod "$pod"
run get pods -l app=frontend

# 5. scale out
run scale deployment/frontend --replicas=6

# 6. a canary: same app label, track: canary, image tag v2
run apply -f $M/frontend-canary.yaml
run get pods -L track

# 7. a rolling update: the manifest's image tag changed to v2, applied again
sed 's#hello-frontend:v1#hello-frontend:v2#' $M/frontend.yaml > /tmp/podnet-$LAB-frontend-v2.yaml
run apply -f /tmp/podnet-$LAB-frontend-v2.yaml
run rollout history deployment/frontend
run get rs

# 8. and back
run rollout undo deployment/frontend
run rollout status deployment/frontend

wait "$load" || true
echo; echo "requests from outside during steps 4-8:"; cat /tmp/podnet-$LAB-load.$$
rm -f /tmp/podnet-$LAB-load.$$ /tmp/podnet-$LAB-frontend-v2.yaml
