# One image for every part of the gateway; docker-compose.yml picks the process with `command`.
# Node 24 LTS, the version the tests and benchmarks run on. Production runs the JavaScript that `npm run build` emits
# to dist/ (tsc, types erased, imports rewritten to .js): running the TypeScript sources with Node's built-in type
# stripping would work too, but costs every process ~20 MiB more memory (docs/operations.md#memory).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --strict-allow-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY shared ./shared
COPY control-plane ./control-plane
COPY data-plane ./data-plane
COPY scripts ./scripts
RUN npm run build

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --strict-allow-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY examples ./examples
COPY conf ./conf
USER node
# The data plane by default: h2c on 9081, TLS on 9443.
EXPOSE 9081 9443
CMD ["node", "dist/data-plane/main.js"]
