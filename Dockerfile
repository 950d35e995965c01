# CanaDuck: the compiled server (npm run build) on Node 20, as a non-root user.
#   docker build -t canaduck .
#   docker run --rm -p 3000:3000 -p 6667:6667 canaduck          (embedded mode, data in the volume /data)
# Distributed mode: set DATABASE_URL and REDIS_URL (compose.yaml, deploy/k8s/).

# Build: every dependency (tsx, esbuild), then dist/ (server modules and the prebuilt web client).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.ts ./scripts/
COPY src ./src
COPY public ./public
RUN npm run build

# Production dependencies only (the postinstall applies patches/ to postgres-js).
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
# tini as PID 1: it forwards SIGTERM to node, which drains and exits on it (src/main.ts). Node
# itself as PID 1 would handle SIGTERM once its handler is installed, but a signal that arrives
# during start-up (PGlite, migrations) is ignored by PID 1 without a handler, and the stop would
# then wait for the grace period and SIGKILL.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=3000 \
    CANADUCK_IRC_PORT=6667 \
    CANADUCK_DATA_DIR=/data
WORKDIR /app
# Read at run time from beside dist/: migrations/ (storage), public/ (index.html), package.json ("type": "module").
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations
COPY public ./public
# The embedded mode's PGlite directory; the distributed mode writes nothing to disk.
RUN mkdir /data && chown node:node /data
VOLUME ["/data"]
# The node image's unprivileged user (uid 1000); the code stays owned by root, read-only to it.
USER node
EXPOSE 3000 6667
# Liveness, not readiness: a draining replica (503 on /readyz) is alive. No curl in the slim image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--enable-source-maps", "dist/main.js"]
