# syntax=docker/dockerfile:1
# The bZapper gateway: built from source in a Rust stage, run on Debian slim as a non-root
# user with its data in /data. `docker compose up` (compose.yaml) runs two nodes on PostgreSQL.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crates.io downloads and the compiled dependencies between builds,
# so a change of bZapper's own code recompiles only its crates; the binary is copied out of
# the cached target dir, which is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bzapper \
    && cp target/release/bzapper /usr/local/bin/bzapper

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home bzapper \
    && mkdir /data && chown bzapper:bzapper /data
COPY --from=builder /usr/local/bin/bzapper /usr/local/bin/bzapper
USER 10001:10001
VOLUME /data
EXPOSE 8080
# `bzapper healthcheck` asks GET /readyz on 127.0.0.1:8080 (the image has no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bzapper", "healthcheck", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["bzapper"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
