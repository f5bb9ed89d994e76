#!/usr/bin/env bash
# Build every base image the stack needs from Debian's packages alone, with no container registry:
# a Python base (for the Dockerfile's PYTHON_IMAGE), PostgreSQL, Redis and nginx. Each is a
# Debian trixie root file system made by mmdebstrap and loaded with `docker import`, then
# finished by a small Dockerfile in scripts/base-images/ (entrypoint, user, healthcheck) that
# behaves like the official image where docker-compose.yml relies on it.
#
#   scripts/build-base-images.sh > images.env        # or: make images
#   set -a; . ./images.env; set +a; docker compose up -d --build
#
# Prints the image names as VAR=name lines on stdout (progress goes to stderr). An image is
# rebuilt only when missing or when this script or its scripts/base-images/ files changed
# (a label holds their hash), so a second run takes a second.
#
# Settings (environment):
#   DEBIAN_MIRROR      default http://deb.debian.org/debian (the security suite comes from
#                      DEBIAN_SECURITY_MIRROR, default http://deb.debian.org/debian-security)
#   EXTRA_CA_CERTS_FILE     a PEM file of extra CA certificates (a TLS-intercepting proxy's): added to
#                      every image's system store, so apt, pip and the app trust it
#   BASE_IMAGE_PREFIX  default aiproject-base/ (names: ${prefix}python:3.13-trixie, ...)
#   FORCE=1            rebuild even when up to date
set -euo pipefail
cd "$(dirname "$0")/.."

suite=trixie
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
prefix="${BASE_IMAGE_PREFIX:-aiproject-base/}"
extra_ca="${EXTRA_CA_CERTS_FILE:-}"
here=scripts/base-images

log() { printf '[build-base-images] %s\n' "$*" >&2; }

for tool in mmdebstrap docker; do
    command -v "$tool" >/dev/null || { log "missing $tool (apt-get install mmdebstrap docker.io)"; exit 1; }
done
if [ -n "$extra_ca" ] && [ ! -s "$extra_ca" ]; then
    log "EXTRA_CA_CERTS_FILE=$extra_ca is not a readable, non-empty file"; exit 1
fi

# What an image is made from: this script, its helper files and the extra CA bundle.
recipe_hash="$(cat "$0" "$here"/* ${extra_ca:+"$extra_ca"} | sha256sum | cut -c1-16)"

up_to_date() {
    [ "${FORCE:-0}" = 1 ] && return 1
    [ "$(docker image inspect -f '{{ index .Config.Labels "aiproject.recipe" }}' "$1" 2>/dev/null)" = "$recipe_hash" ]
}

# A trixie root file system with the given packages, without documentation, man pages or
# translations (they make up a fifth of a minimal system), imported as image $1.
rootfs_image() {
    local name="$1" packages="$2"
    local hooks=(
        --dpkgopt='path-exclude=/usr/share/man/*'
        --dpkgopt='path-exclude=/usr/share/doc/*'
        --dpkgopt='path-include=/usr/share/doc/*/copyright'
        --dpkgopt='path-exclude=/usr/share/info/*'
        --dpkgopt='path-exclude=/usr/share/locale/*'
        --dpkgopt='path-exclude=/usr/share/lintian/*'
        # glibc's iconv modules: nothing in these images converts charsets through iconv.
        --dpkgopt='path-exclude=/usr/lib/*/gconv/*'
        # No postgresql "main" cluster: the image's entrypoint makes one in the data volume.
        --essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/no-main.conf"'
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/tmp/*'
    )
    if [ -n "$extra_ca" ]; then
        hooks+=(
            --customize-hook="upload $extra_ca /usr/local/share/ca-certificates/extra-ca.crt"
            --customize-hook='chroot "$1" update-ca-certificates'
        )
    fi
    log "mmdebstrap $suite for $name: $packages"
    mmdebstrap --quiet --variant=minbase --include="ca-certificates,$packages" "${hooks[@]}" \
        "$suite" - \
        "deb $mirror $suite main" \
        "deb $mirror $suite-updates main" \
        "deb $security_mirror $suite-security main" \
        | docker import - "$name" >/dev/null
}

# Image $1 from rootfs $2 finished by scripts/base-images/$3.Dockerfile (context: that folder).
finish_image() {
    local name="$1" rootfs="$2" recipe="$3"
    DOCKER_BUILDKIT=0 docker build --quiet --no-cache \
        --build-arg ROOTFS="$rootfs" --label "aiproject.recipe=$recipe_hash" \
        -f "$here/$recipe.Dockerfile" -t "$name" "$here" >/dev/null
    docker image rm "$rootfs" >/dev/null
}

build() {
    local var="$1" name="$2" recipe="$3" packages="$4"
    if up_to_date "$name"; then
        log "$name is up to date"
    else
        local started=$SECONDS
        rootfs_image "$name-rootfs" "$packages"
        finish_image "$name" "$name-rootfs" "$recipe"
        log "$name built in $((SECONDS - started)) s"
    fi
    echo "$var=$name"
}

build PYTHON_IMAGE "${prefix}python:3.13-trixie" python "python3,python3-venv,python-is-python3"
build POSTGRES_IMAGE "${prefix}postgres:17-trixie" postgres "postgresql-17"
build REDIS_IMAGE "${prefix}redis:8-trixie" redis "redis-server"
build NGINX_IMAGE "${prefix}nginx:1.26-trixie" nginx "nginx,curl"
