# syntax=docker/dockerfile:1
#
# Countersign gateway image. Two stages: `build` installs the workspace, generates the
# Prisma client and compiles every package (the root postinstall), then reinstalls the
# production dependencies only; `runtime` holds that tree, runs as an unprivileged user and
# writes nowhere but its data volume (and /tmp, if the platform gives it one).
#
#   docker build -t countersign:0.1.0 .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 -v countersign-data:/var/lib/countersign countersign:0.1.0
#
# Pin NODE_IMAGE by digest in your own builds (node:20-bookworm-slim@sha256:...).
# See docs/deployment.md for what has and has not been verified about this file.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true \
    TURBO_TELEMETRY_DISABLED=1 \
    CHECKPOINT_DISABLE=1 \
    PRISMA_HIDE_UPDATE_MESSAGE=1
RUN npm install --global --no-audit --no-fund pnpm@10.34.9
COPY . .
# The postinstall runs scripts/prisma-generate.mjs and builds every package into dist/.
# Then the dev dependencies go: the production install reuses pnpm's store (--offline) and
# runs no scripts (no production dependency needs one). Sources and build files go too;
# the compiled Prisma client is in packages/db/dist/generated.
RUN pnpm install --frozen-lockfile \
 && rm -rf node_modules apps/*/node_modules packages/*/node_modules \
 && pnpm install --frozen-lockfile --prod --offline --ignore-scripts \
 && rm -rf apps/*/src packages/*/src packages/*/test apps/*/test scripts .turbo \
 && find apps packages -name '*.map' -type f -delete

FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="countersign" \
      org.opencontainers.image.description="Countersign approval gateway"
# HOST=0.0.0.0: the gateway's default (127.0.0.1) is unreachable from outside a container.
# The data directory holds the embedded database (PGlite) when DATABASE_URL is unset, and
# the receipt key ring when COUNTERSIGN_RECEIPT_KEY is unset; it is the only place written.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json \
    COUNTERSIGN_DATA_DIR=/var/lib/countersign/data
WORKDIR /app
COPY --from=build /app /app
# The node image's unprivileged user is uid/gid 1000 ("node"); a numeric USER lets
# Kubernetes check runAsNonRoot without a runAsUser of its own.
RUN mkdir -p /var/lib/countersign/data \
 && chown -R 1000:1000 /var/lib/countersign \
 && chmod 0700 /var/lib/countersign/data
VOLUME ["/var/lib/countersign"]
USER 1000:1000
EXPOSE 8080
# /readyz answers 200 once the database is reachable and fully migrated (503 before).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 and handles SIGTERM itself (a clean shutdown seals the audit log).
# Other commands: docker run ... countersign node apps/cli/dist/main.js migrate
CMD ["node", "apps/gateway/dist/main.js"]
