# syntax=docker/dockerfile:1
# Build: docker build --build-arg CDN_EXPORTER_REVISION=$(git rev-parse --short=12 HEAD) -t cdn-usage-exporter .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
ARG CDN_EXPORTER_REVISION=unknown
ENV CDN_EXPORTER_REVISION=${CDN_EXPORTER_REVISION}
# The same build command CI and the README use.
RUN cargo build --release --locked \
 && install -m 0755 target/release/cdn-usage-exporter /usr/local/bin/cdn-usage-exporter

FROM debian:bookworm-slim
# rustls' platform verifier reads the system CA store.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/cdn-usage-exporter /usr/local/bin/cdn-usage-exporter
USER 65534:65534
EXPOSE 9862
# The binary probes itself (the image has no curl): /healthz over HTTP, or HTTPS with TLS on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/cdn-usage-exporter", "healthcheck", "--web.listen-address", "127.0.0.1:9862"]
ENTRYPOINT ["/usr/local/bin/cdn-usage-exporter"]
# Configuration by mount (-v ./config:/etc/cdn-usage-exporter:ro) and credentials by env
# (-e SCALEENGINE_API_KEY ...) or mounted secret files (*_file keys).
CMD ["--config", "/etc/cdn-usage-exporter/config.toml"]
