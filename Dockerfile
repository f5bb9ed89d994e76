# syntax=docker/dockerfile:1.7
# Two targets from one build: `app` (daphne, the default) and `proxy` (nginx with the collected
# static files and nginx/nginx.conf). No secret is in any layer: settings come at run time.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: dependencies in their own cached layer, then the code and collectstatic ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# collectstatic needs settings to load; these placeholders exist only in this RUN's environment.
RUN DEBUG=true SECRET_KEY=collectstatic-only AI_API_KEY=collectstatic-only \
    STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput \
    && python -m compileall -q aiproject chat analytics experiments

# --- proxy: nginx serving /static/ and proxying the app (SSE unbuffered) --------------------
FROM nginx:1.27-bookworm AS proxy
COPY nginx/nginx.conf /etc/nginx/nginx.conf
COPY --from=build /app/staticfiles /app/staticfiles

# --- app: the daphne server (default target) ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=app:app /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# --application-close-timeout: how long a stream's cleanup may run after the client went away.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "--application-close-timeout", "10", "aiproject.asgi:application"]
