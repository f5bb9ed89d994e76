#!/usr/bin/env bash
# The container part of CI (.ci/run calls it; it runs alone too, as root on Debian):
#  1. installs docker.io, mmdebstrap, openssh-server and Compose v2 from Debian's packages if
#     missing, and starts dockerd if none runs;
#  2. builds every image with no registry (scripts/build-base-images.sh, then the Dockerfile with
#     the legacy builder, DOCKER_BUILDKIT=0), plus a second tag and a broken tag for the deploy;
#  3. brings the stack up in a deploy directory, as on a server, with two web replicas and the
#     demo profile (the simulator as the AI API), and runs scripts/stack_test.py smoke;
#  4. starts an OpenSSH server on 127.0.0.1 (a key made for this run, a free port) and runs
#     scripts/stack_test.py deploy, which runs scripts/deploy.sh through ssh;
#  5. tears everything down (containers, networks, volumes) and stops the dockerd it started.
# Timings are printed at the end (docs/deploy.md quotes them).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
py="${PYTHON:-$repo/.venv/bin/python}"
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n--- %s [%d s]\n' "$*" "$SECONDS"; }
timings=()
timed() { local label="$1" start=$SECONDS; shift; "$@"; timings+=("$label: $((SECONDS - start)) s"); }

step "packages: docker.io, mmdebstrap, openssh-server, Compose v2"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! docker compose version >/dev/null 2>&1; then
    # Bookworm has only Compose v1; trixie packages v2 as a CLI plugin. Its suite is added with
    # a low pin priority, so that nothing but this one package comes from it.
    cat > /etc/apt/sources.list.d/trixie-compose.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-compose
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker-compose/trixie >/dev/null
fi
docker compose version

work="$(mktemp -d /tmp/aiproject-containers.XXXXXX)"
dockerd_pid=""
sshd_pid=""
srv="$work/srv"
cleanup() {
    local status=$?
    local teardown_start=$SECONDS
    step "tear down"
    if [ -f "$srv/docker-compose.yml" ]; then
        (cd "$srv" && docker compose logs --no-color --tail 200 > "$work/compose.log" 2>&1 || true)
        [ "$status" -eq 0 ] || tail -n 120 "$work/compose.log" || true
        (cd "$srv" && docker compose down --volumes --remove-orphans --timeout 90 >/dev/null 2>&1) || true
    fi
    [ -z "$sshd_pid" ] || kill "$sshd_pid" 2>/dev/null || true
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        echo "stopped the dockerd this script started"
    fi
    rm -rf "$work"
    timings+=("tear down: $((SECONDS - teardown_start)) s")
    step "timings"
    printf '%s\n' "${timings[@]}" "container part in all: ${SECONDS} s (exit status $status)"
    exit "$status"
}
trap cleanup EXIT

step "dockerd"
if ! docker info >/dev/null 2>&1; then
    # No systemd here: run the daemon in the background; its data stays in /var/lib/docker, so
    # the image layers of one run make the next one's builds warm.
    dockerd > /var/log/dockerd-ci.log 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd-ci.log; exit 1; }
fi
docker version --format 'client {{.Client.Version}}, engine {{.Server.Version}}'

step "images"
# A TLS-intercepting proxy's CA certificates (as on this machine): trusted by every image.
ca_bundle="$work/extra-ca.pem"
cat /usr/local/share/ca-certificates/*.crt > "$ca_bundle" 2>/dev/null || true
if [ -s "$ca_bundle" ]; then
    export EXTRA_CA_CERTS_FILE="$ca_bundle" EXTRA_CA_CERTS="$(cat "$ca_bundle")"
    # The smoke test then checks that the app's own HTTPS calls trust that CA (PyPI is reachable
    # wherever the build works).
    export STACK_TEST_TLS_URL="${STACK_TEST_TLS_URL:-https://pypi.org/simple/pip/}"
fi
timed "base images (scripts/build-base-images.sh)" bash scripts/build-base-images.sh > "$work/images.env"
cat "$work/images.env"
set -a
# shellcheck disable=SC1091
. "$work/images.env"
set +a
export APP_IMAGE=aiproject-ci/app APP_TAG=ci-1
build_app_images() {
    local target
    for target in app proxy; do
        DOCKER_BUILDKIT=0 docker build --quiet --build-arg PYTHON_IMAGE --build-arg NGINX_IMAGE \
            --build-arg EXTRA_CA_CERTS --target "$target" \
            -t "${APP_IMAGE}$([ "$target" = proxy ] && echo -proxy):ci-1" . >/dev/null
    done
    # The demo profile's simulator: the app image with devtools/ (its layers up to the code are
    # the app's, from the cache).
    DOCKER_BUILDKIT=0 docker build --quiet --build-arg PYTHON_IMAGE --build-arg NGINX_IMAGE \
        --build-arg EXTRA_CA_CERTS --build-arg INCLUDE_DEVTOOLS=true --target app \
        -t "${APP_IMAGE}-devtools:ci-1" . >/dev/null
}
timed "app, proxy and simulator images (legacy builder)" build_app_images
# The deploy's new tag: the same build under another tag, with a label of its own so that it is
# a different image (nginx's image stays the same, so the deploy does not restart nginx).
echo "FROM ${APP_IMAGE}:ci-1" | docker build --quiet --label aiproject.ci-tag=ci-2 -t "${APP_IMAGE}:ci-2" - >/dev/null
# A tag whose readiness never passes: daphne listens on another port than 8000.
printf 'FROM %s:ci-1\nCMD ["daphne", "-b", "0.0.0.0", "-p", "8999", "aiproject.asgi:application"]\n' \
    "$APP_IMAGE" | docker build --quiet -t "${APP_IMAGE}:ci-broken" - >/dev/null
for tag in ci-2 ci-broken; do docker tag "${APP_IMAGE}-proxy:ci-1" "${APP_IMAGE}-proxy:${tag}"; done
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^aiproject' | sort

step "the stack, in a deploy directory as on a server"
mkdir -p "$srv"
cp docker-compose.yml scripts/deploy.sh "$srv/"
cat > "$srv/.env.production" <<EOF
DEBUG=false
SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
AI_API_KEY=sk-simulator
AI_BASE_URL=http://simulator:8001/v1
ALLOWED_HOSTS=127.0.0.1,localhost
SECURE_SSL_REDIRECT=false
SESSION_COOKIE_SECURE=false
CSRF_COOKIE_SECURE=false
SECURE_HSTS_SECONDS=0
POSTGRES_DB=aiproject
POSTGRES_USER=aiproject
POSTGRES_PASSWORD=ci-password
DATABASE_URL=postgres://aiproject:ci-password@postgres:5432/aiproject
REDIS_URL=redis://redis:6379/0
QUOTA_REQUESTS_PER_MINUTE=none
CHAT_STALE_AFTER_SECONDS=5
EOF
# What compose reads for its own variables: the images, the demo profile, a free host port.
{
    cat "$work/images.env"
    echo "COMPOSE_PROJECT_NAME=aiproject-ci"
    echo "COMPOSE_PROFILES=demo"
    echo "HTTP_PORT=127.0.0.1:"
    echo "APP_IMAGE=$APP_IMAGE"
    echo "APP_TAG=ci-1"
    echo "SIMULATOR_TAG=ci-1"
    echo "WEB_REPLICAS=2"
} > "$srv/.env"
echo ci-1 > "$srv/.deployed-tag"
cd "$srv"
timed "docker compose up --wait (to every service healthy)" docker compose up -d --wait --no-build
docker compose ps --format 'table {{.Service}}\t{{.Image}}\t{{.Status}}'
cd "$repo"

step "smoke test through nginx"
timed "smoke test" "$py" scripts/stack_test.py --project-dir "$srv" smoke

step "sshd on 127.0.0.1 for the deploy"
mkdir -p "$work/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/deploy_key"
cp "$work/ssh/deploy_key.pub" "$work/ssh/authorized_keys"
ssh_port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/ssh/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
PidFile $work/ssh/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
/usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2> "$work/ssh/sshd.log" &
sshd_pid=$!
echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$work/ssh/host_key.pub")" > "$work/ssh/known_hosts"
ssh_cmd="ssh -p $ssh_port -i $work/ssh/deploy_key -o BatchMode=yes -o UserKnownHostsFile=$work/ssh/known_hosts -o StrictHostKeyChecking=yes $(id -un)@127.0.0.1"
for _ in $(seq 20); do $ssh_cmd true 2>/dev/null && break; sleep 0.5; done
$ssh_cmd 'echo "ssh to $(hostname) works"'

step "rolling deploy test (deploy.sh through ssh)"
timed "deploy test" "$py" scripts/stack_test.py --project-dir "$srv" deploy \
    --ssh "$ssh_cmd" --new-tag ci-2 --broken-tag ci-broken
