# The pgrag API, worker, migrations and dev inference server (one image, several commands).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm install --no-save tsx
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
ENV PGRAG_HOST=0.0.0.0 PGRAG_PORT=8080
# The image's unprivileged user: the API needs no root, and a compromise should not get it.
USER node
EXPOSE 8080
ENTRYPOINT ["node", "bin/pgrag.js"]
CMD ["serve"]
