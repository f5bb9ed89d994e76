# Two targets from one build: `app` (daphne, the default) and `proxy` (nginx with the collected
# static files and nginx/nginx.conf). `--build-arg INCLUDE_DEVTOOLS=true` makes the app image with
# the LLM simulator (devtools/) for the demo profile. No secret is in any layer: settings come at
# run time.
# Builds with BuildKit and with the legacy builder (DOCKER_BUILDKIT=0) alike, so it has no
# syntax directive (that would make BuildKit fetch a frontend image from a registry).
#
# Base images: the official ones by default; without a registry, scripts/build-base-images.sh
# (`make images`) makes equivalents from Debian's packages and prints their names.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG NGINX_IMAGE=nginx:1.27-bookworm

# --- build: dependencies in their own cached layer, then the code and collectstatic ----------
FROM ${PYTHON_IMAGE} AS build
# Extra CA certificates (PEM text, e.g. a TLS-intercepting proxy's), added to the system store
# that apt uses and given to pip (which otherwise trusts only its own bundle). Public data: it
# shows in `docker history`, as build arguments do.
ARG EXTRA_CA_CERTS=""
SHELL ["/bin/sh", "-eu", "-c"]
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/extra-ca.crt; \
        update-ca-certificates >/dev/null; \
    fi
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt .
# Then what the app never loads, to keep the image under 250 MB (this saves about 70 MB): pip
# itself, the test suites some packages ship (Twisted's alone is 20 MB; django/test is Django's
# test framework, kept), Django's translations other than English (LANGUAGE_CODE is en-us and no
# middleware switches the language) and the contrib apps outside INSTALLED_APPS that nothing
# imports.
RUN pip install -r requirements.txt \
    && pip uninstall --yes --quiet pip \
    && find /opt/venv -depth -type d \( -name test -o -name tests \) ! -path '*/django/test' \
        -exec rm -rf {} + \
    && find /opt/venv -path '*/locale/*/LC_MESSAGES/*.mo' ! -path '*/locale/en/*' -delete \
    && for unused in gis admindocs flatpages redirects humanize; do \
        rm -rf /opt/venv/lib/python3*/site-packages/django/contrib/"$unused"; \
    done
COPY . .
# devtools/ (the LLM simulator, the tests' and benches' helpers) stays out of the production image;
# INCLUDE_DEVTOOLS=true keeps it, for the simulator image of compose's demo profile (docs/deploy.md).
ARG INCLUDE_DEVTOOLS=false
RUN if [ "$INCLUDE_DEVTOOLS" != true ]; then rm -rf devtools; fi
# collectstatic needs settings to load; these placeholders exist only in this RUN's environment.
# The files go to the proxy image only: the app never serves them (SERVE_STATIC is off).
RUN DEBUG=true SECRET_KEY=collectstatic-only AI_API_KEY=collectstatic-only \
    STATIC_ROOT=/staticfiles python manage.py collectstatic --noinput >/dev/null \
    && python -m compileall -q aiproject core chat analytics experiments \
    && if [ -d devtools ]; then python -m compileall -q devtools; fi

# --- proxy: nginx serving /static/ and proxying the app (SSE unbuffered) --------------------
FROM ${NGINX_IMAGE} AS proxy
COPY nginx/nginx.conf /etc/nginx/nginx.conf
COPY --from=build /staticfiles /app/staticfiles

# --- app: the daphne server (default target) ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS app
ARG EXTRA_CA_CERTS=""
SHELL ["/bin/sh", "-eu", "-c"]
# The same CA in the running app's trust store, for its outbound calls (the AI API, webhooks):
# SSL_CERT_FILE points Python's ssl module, aiohttp and httpx at the system bundle.
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/extra-ca.crt; \
        update-ca-certificates >/dev/null; \
    fi \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=app:app /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# --application-close-timeout: how long a stream's cleanup may run after the client went away.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "--application-close-timeout", "10", "aiproject.asgi:application"]
