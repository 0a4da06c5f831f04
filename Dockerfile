# syntax=docker/dockerfile:1
#
# One image per function: docker build --build-arg FUNCTION=events -t events .
# FUNCTION is a workspace package whose binary has the same name (events, metrics, health,
# worker, migrate). `local` is a development tool and is never built into an image.
#
# The binary is static (x86_64-unknown-linux-musl, no libpq, no OpenSSL), so the final image is
# `scratch` plus the binary, a CA bundle (the Google SDK clients refuse to build without one,
# even against a plain-http emulator) and a passwd entry for a non-root user.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG FUNCTION
# hadolint ignore=DL3008
RUN test -n "${FUNCTION}" || { echo "build with --build-arg FUNCTION=<function>" >&2; exit 1; } \
 && test "${FUNCTION}" != "local" || { echo "'local' is a development binary and is never shipped" >&2; exit 1; } \
 && rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
# DL3008 (pin apt versions) is ignored above on purpose: musl-tools only supplies musl-gcc for
# the C parts of ring/aws-lc, the toolchain itself is pinned by the base image tag, and a pinned
# Debian version disappears from the mirror at the next point release, breaking every build.

WORKDIR /src
# The whole workspace is needed: cargo resolves every member listed in Cargo.toml, and
# shared/data embeds migrations/ at compile time. .dockerignore keeps target/ and .git out.
COPY . .

# The registry and target dir live in BuildKit cache mounts, so they are not in any layer and
# the binary has to be copied out of the mounted target dir within the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry,id=cargo-registry \
    --mount=type=cache,target=/usr/local/cargo/git,id=cargo-git \
    --mount=type=cache,target=/src/target,id=cargo-target-musl \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p "${FUNCTION}" \
 && install -D -m 0555 "target/x86_64-unknown-linux-musl/release/${FUNCTION}" /out/app

# scratch has no useradd: write the entries here and copy them over. 65532 is the conventional
# "nonroot" id of distroless images, so volume permissions behave the same as there.
RUN printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > /out/passwd \
 && printf 'nonroot:x:65532:\n' > /out/group

FROM scratch
ARG FUNCTION
LABEL org.opencontainers.image.title="${FUNCTION}" \
      org.opencontainers.image.description="event analytics function: ${FUNCTION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/app /app
USER 65532:65532
# Cloud Run injects PORT itself; this default serves docker run and compose.
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/app"]
