# EchoDB's image: one program, `echodb`, whose command picks what a container does
# (`run --roles ...` by default, `setup` for the one-shot job). See docs/deployment.md.
#
# Node 24 LTS: Node 20 is out of support since 2026-04-30, and cockatiel@4 declares node >=22. Debian-based, not
# Alpine: @temporalio/worker ships its native core for glibc.
# Pinned by digest as PeerDB pins its third-party images (image:tag@sha256:<digest of the multi-platform index>):
# a rebuild gets the same base until someone moves the digest. This one is node:24-bookworm-slim of late September
# 2026 (Node 24.21.0), read from public Dockerfiles and CI files that pin this multi-platform index (as
# node:24-bookworm-slim and node:24.21.0-bookworm-slim, built for linux/amd64 and arm64), as no registry was
# reachable where it was written; docker-library/repo-info's newest record seen was older (sha256:a9f5f7c9...,
# Node 24.19.0, 2026-08-25).
# To refresh it: `docker buildx imagetools inspect node:24-bookworm-slim` and take the `Digest:` line (the index,
# not one platform's manifest), then `docker compose build`.
ARG NODE_IMAGE=node:24-bookworm-slim@sha256:2fe369e969550cde8e867afc3fe370b260140cab4a23d467074295b42163d553

# --- build: compiles TypeScript into dist/, copies the SQL migrations and bundles the workflows
# (dist/workflow-bundle.js), so that the runtime needs neither tsx nor webpack.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN npm run build

# --- runtime: production dependencies and dist/ only, as the unprivileged `node` user
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force
COPY --from=build /app/dist ./dist
# Where LOG_FILE points in the original manual (/var/log/echodb/auto-mirror.log): writable by `node`.
RUN mkdir -p /var/log/echodb && chown node:node /var/log/echodb
USER node
# The api role's liveness endpoint, on HEALTH_PORT (default 8080). Containers without the api role (the one-shot
# `setup`) disable this check in docker-compose.yml. fetch is built into Node: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.HEALTH_PORT || 8080}/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/echodb.js"]
CMD ["run"]
