# EchoDB's image: one program, `echodb`, whose command picks what a container does
# (`run --roles ...` by default, `setup` for the one-shot job). See docs/deployment.md.
#
# Debian-based, not Alpine: @temporalio/worker ships its native core for glibc.
ARG NODE_IMAGE=node:20-bookworm-slim

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
USER node
# The api role's liveness endpoint, on HEALTH_PORT (default 8080). Containers without the api role (the one-shot
# `setup`) disable this check in docker-compose.yml. fetch is built into Node: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.HEALTH_PORT || 8080}/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/echodb.js"]
CMD ["run"]
