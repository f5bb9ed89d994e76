#!/usr/bin/env bash
# On the server, in the directory holding docker-compose.yml and .env.production:
#   APP_IMAGE=ghcr.io/OWNER/REPO bash deploy.sh NEW_TAG
# Pulls NEW_TAG, runs migrations, starts it, waits for /readyz through nginx, and rolls back to the
# previously deployed tag if it never becomes ready. The deployed tag is kept in .deployed-tag.
set -euo pipefail

new_tag="${1:?usage: deploy.sh IMAGE_TAG}"
: "${APP_IMAGE:?set APP_IMAGE (e.g. ghcr.io/owner/repo)}"
ready_url="${READY_URL:-http://127.0.0.1:${HTTP_PORT:-80}/readyz}"
ready_timeout="${READY_TIMEOUT_SECONDS:-120}"
previous_tag="$(cat .deployed-tag 2>/dev/null || true)"
export APP_IMAGE

compose() { APP_TAG="$1" docker compose "${@:2}"; }

wait_ready() {
    local deadline=$((SECONDS + ready_timeout))
    until curl -fsS -o /dev/null --max-time 5 "$ready_url"; do
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 3
    done
}

echo "Deploying ${APP_IMAGE}:${new_tag} (previous: ${previous_tag:-none})"
compose "$new_tag" pull
compose "$new_tag" run --rm migrate
compose "$new_tag" up -d --remove-orphans
if wait_ready; then
    echo "$new_tag" > .deployed-tag
    docker image prune -f --filter "until=168h" >/dev/null || true
    echo "Deployed ${new_tag}: ${ready_url} is ready."
    exit 0
fi

echo "ERROR: ${new_tag} did not become ready within ${ready_timeout}s." >&2
compose "$new_tag" logs --tail 100 web >&2 || true
if [ -z "$previous_tag" ]; then
    echo "No previous tag to roll back to." >&2
    exit 1
fi
echo "Rolling back to ${previous_tag}." >&2
compose "$previous_tag" up -d --remove-orphans
if wait_ready; then
    echo "Rolled back to ${previous_tag}; it is ready." >&2
else
    echo "Rollback to ${previous_tag} is not ready either: intervene by hand." >&2
fi
exit 1
