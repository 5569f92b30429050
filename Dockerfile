# The example app in a container. Needs DATABASE_URL and JWT_SECRET at run time
# (the embedded PostgreSQL is for development and is not installed here).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that app edits do not reinstall them.
COPY pyproject.toml README.md ./
COPY server ./server
RUN pip install .

COPY config.yaml ./
COPY actions ./actions
COPY schemas ./schemas
COPY migrations ./migrations
COPY templates ./templates

RUN useradd --system --uid 10001 --home-dir /app app && chown -R app:app /app
USER app

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"

CMD ["actions-server", "serve", "config.yaml", "--host", "0.0.0.0"]
