#!/bin/sh
# As the official image's entrypoint: options alone mean redis-server; without a config file
# that sets protected-mode, turn it off (the network, not Redis, limits who connects).
set -eu
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
    if ! { [ -f "${2:-}" ] && grep -q '^protected-mode' "$2"; }; then
        set -- "$@" --protected-mode no
    fi
fi
exec "$@"
