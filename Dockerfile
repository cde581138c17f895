# streamrec worker / producer image (used by docker-compose.yml for streamrec-worker and
# streamrec-producer). Build: docker build -t streamrec:local .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY monitoring ./monitoring
RUN pip install . \
    && useradd --create-home --uid 10001 streamrec

USER streamrec
# Prometheus /metrics, /healthz and /recommendations/<session> of `streamrec worker --metrics-port 8000`
EXPOSE 8000
ENTRYPOINT ["streamrec"]
CMD ["--help"]
