#!/usr/bin/env bash
# Rolling deploy, run on the server in the directory holding docker-compose.yml and
# .env.production (the deploy workflow runs it there over ssh):
#   APP_IMAGE=ghcr.io/OWNER/REPO bash deploy.sh NEW_TAG
#
# 1. Pulls NEW_TAG (unless it is already on the server) and runs the migrations with it.
# 2. Replaces the web replicas one at a time: starts one more replica with NEW_TAG (scale up,
#    --no-recreate), waits until it is healthy (its /readyz passes) and nginx has found it (nginx
#    asks Docker's DNS again every 5 s), then stops one old replica. The old one drains on SIGTERM:
#    it refuses new posts and streams, finishes the replies in progress for up to
#    CHAT_DRAIN_SECONDS, then exits (the compose file's stop_grace_period is longer).
# 3. Recreates `monitor` with NEW_TAG, and `nginx` only if its image changed.
# If a new replica is not healthy within READY_TIMEOUT_SECONDS, it rolls back: removes the new
# replicas, brings the previous tag back to the former count, and exits 1. Until then the old
# replicas never stopped serving. The deployed tag is kept in .deployed-tag.
set -euo pipefail

new_tag="${1:?usage: deploy.sh IMAGE_TAG}"
: "${APP_IMAGE:?set APP_IMAGE (e.g. ghcr.io/owner/repo)}"
ready_timeout="${READY_TIMEOUT_SECONDS:-120}"
# nginx's `resolver ... valid=5s`: after this long it sends requests to a new replica.
resolve_seconds="${NGINX_RESOLVE_SECONDS:-6}"
export APP_IMAGE

log() { printf '[deploy] %s\n' "$*" >&2; }
compose() { APP_TAG="$1" docker compose "${@:2}"; }
web_ids() { docker compose ps --all --quiet web | sort; }
health() { docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1"; }

nginx_url() {
    local address
    address="$(docker compose port nginx 80 2>/dev/null | head -1)"
    [ -n "$address" ] || return 1
    echo "http://${address/0.0.0.0/127.0.0.1}"
}

wait_healthy() {
    local id="$1" deadline=$((SECONDS + ready_timeout)) status
    while [ "$SECONDS" -lt "$deadline" ]; do
        status="$(health "$id" 2>/dev/null || echo gone)"
        case "$status" in
            healthy) return 0 ;;
            exited | dead | gone) log "replica ${id:0:12} is $status"; return 1 ;;
        esac
        sleep 2
    done
    log "replica ${id:0:12} not healthy within ${ready_timeout}s (last: $status)"
    return 1
}

wait_routed() {
    local url deadline
    sleep "$resolve_seconds"
    url="$(nginx_url)" || { log "nginx publishes no port"; return 1; }
    deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null --max-time 5 "$url/readyz"; do
        [ "$SECONDS" -lt "$deadline" ] || { log "$url/readyz is not answering through nginx"; return 1; }
        sleep 2
    done
}

stop_replica() {
    log "stopping ${2:-old} replica ${1:0:12} (it drains first)"
    docker stop "$1" >/dev/null
    docker rm "$1" >/dev/null
}

mapfile -t old_ids < <(web_ids)
previous_tag=""
if [ "${#old_ids[@]}" -gt 0 ]; then
    previous_image="$(docker inspect --format '{{.Config.Image}}' "${old_ids[0]}")"
    previous_tag="${previous_image##*:}"
fi
log "deploying ${APP_IMAGE}:${new_tag} over ${#old_ids[@]} replica(s) of ${previous_tag:-nothing}"

if ! docker image inspect "${APP_IMAGE}:${new_tag}" >/dev/null 2>&1 \
    || ! docker image inspect "${APP_IMAGE}-proxy:${new_tag}" >/dev/null 2>&1; then
    compose "$new_tag" pull web nginx
fi
compose "$new_tag" run --rm migrate

if [ "${#old_ids[@]}" -eq 0 ]; then
    # Nothing runs yet: a first start.
    compose "$new_tag" up -d --wait --remove-orphans
    echo "$new_tag" > .deployed-tag
    log "started ${new_tag}"
    exit 0
fi

new_ids=()
rollback() {
    log "ROLLING BACK to ${previous_tag}: removing the new replicas"
    docker logs --tail 40 "${new_ids[-1]}" >&2 2>&1 || true
    for id in "${new_ids[@]}"; do stop_replica "$id" new || docker rm -f "$id" >/dev/null || true; done
    local count
    count="$(web_ids | wc -l)"
    if [ "$count" -lt "${#old_ids[@]}" ]; then
        compose "$previous_tag" up -d --no-deps --no-recreate --scale "web=${#old_ids[@]}" web
        for id in $(web_ids); do wait_healthy "$id" || log "replica ${id:0:12} of ${previous_tag} is not healthy either: intervene by hand"; done
    fi
    log "rolled back: ${previous_tag} serves with $(web_ids | wc -l) replica(s)"
    exit 1
}

for old in "${old_ids[@]}"; do
    before="$(web_ids)"
    count="$(printf '%s\n' "$before" | grep -c .)"
    compose "$new_tag" up -d --no-deps --no-recreate --scale "web=$((count + 1))" web
    new_id="$(comm -13 <(printf '%s\n' "$before") <(web_ids) | head -1)"
    [ -n "$new_id" ] || { log "scaling up made no new replica"; exit 1; }
    new_ids+=("$new_id")
    log "new replica ${new_id:0:12}: waiting until it is ready"
    wait_healthy "$new_id" || rollback
    wait_routed || rollback
    stop_replica "$old"
done

compose "$new_tag" up -d --no-deps monitor
nginx_id="$(docker compose ps --quiet nginx)"
if [ "$(docker inspect --format '{{.Image}}' "$nginx_id")" \
    != "$(docker image inspect --format '{{.Id}}' "${APP_IMAGE}-proxy:${new_tag}")" ]; then
    # A new proxy image (new static files or nginx.conf): a restart of a few seconds.
    compose "$new_tag" up -d --no-deps nginx
fi
echo "$new_tag" > .deployed-tag
docker image prune -f --filter "until=168h" >/dev/null || true
log "deployed ${new_tag}: $(web_ids | wc -l) replica(s) ready"
