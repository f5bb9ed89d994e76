# PostgreSQL 17 from Debian trixie's packages, behaving like the official image where
# docker-compose.yml relies on it: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB (and
# POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS) make the cluster, user and database on first
# start in the PGDATA volume; pg_isready on PATH. Made by scripts/build-base-images.sh.
ARG ROOTFS
FROM ${ROOTFS}
ENV PATH=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# Runs as the postgres user throughout: a new named volume takes this directory's owner.
RUN mkdir -p "$PGDATA" /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 "$PGDATA"
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# SIGINT is PostgreSQL's "fast" shutdown, as in the official image.
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
