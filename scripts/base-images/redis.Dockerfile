# Redis from Debian trixie's packages, behaving like the official image where docker-compose.yml
# relies on it: `redis-server [options]` runs in /data as the redis user and, without a config
# file, with protected mode off so that other containers on the network can connect (Debian's
# default keeps it on). Made by scripts/build-base-images.sh.
ARG ROOTFS
FROM ${ROOTFS}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
