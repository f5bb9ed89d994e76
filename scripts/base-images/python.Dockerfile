# Python 3.13 from Debian trixie's packages (python3, python3-venv, python-is-python3): the
# registry-free PYTHON_IMAGE for the project's Dockerfile. Made by scripts/build-base-images.sh.
ARG ROOTFS
FROM ${ROOTFS}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
