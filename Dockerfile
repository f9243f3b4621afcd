# One image with every binary; docker-compose.yml and the Kubernetes manifests pick the command.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/iapd target/release/iap-verifier target/release/iap-delivery \
       target/release/iap-scheduler target/release/iap-emulator target/release/iap-migrate \
       target/release/iap-game-server /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 iap \
 && mkdir -p /var/lib/iap-game /var/lib/iap-emulator \
 && chown iap /var/lib/iap-game /var/lib/iap-emulator
COPY --from=build /out/ /usr/local/bin/
USER iap
WORKDIR /home/iap
ENV IAP_TELEMETRY_LOG_FORMAT=json
CMD ["iapd"]
