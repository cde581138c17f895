# streamrec worker / producer image (used by docker-compose.yml for streamrec-worker and
# streamrec-producer). Build: docker build -t streamrec:local .
#
# Two stages: the first has a C compiler and builds the wheel (with the rule models' compiled rows,
# stream/models/_rules.c); the runtime image gets only the wheel.
FROM python:3.12-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY stream ./stream
COPY monitoring ./monitoring
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && python -c "import stream.models._rules" \
    && useradd --create-home --uid 10001 streamrec

WORKDIR /app
USER streamrec
# Prometheus /metrics, /healthz and /recommendations/<session> of `streamrec worker --metrics-port 8000`
EXPOSE 8000
ENTRYPOINT ["streamrec"]
CMD ["--help"]
