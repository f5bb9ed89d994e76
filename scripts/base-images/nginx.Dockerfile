# nginx 1.26 from Debian trixie's packages, behaving like the official image where
# docker-compose.yml relies on it: the configuration at /etc/nginx/nginx.conf, logs to the
# container's stdout/stderr, `nginx -g 'daemon off;'`, a graceful stop on SIGQUIT, and curl for
# the health check. Made by scripts/build-base-images.sh.
ARG ROOTFS
FROM ${ROOTFS}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rm -f /etc/nginx/sites-enabled/default \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
