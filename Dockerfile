# Dockerfile: the playbookd image, with playbookd and the falco-nats forwarder, on Debian 12.
#   docker build -t playbookd:dev .
# Stage build compiles with Debian's packages (the same ones `make deps` installs); the runtime stage
# has only the shared libraries they link against and CA certificates, and runs as 65532.
# The build context is only what `make` needs (see .dockerignore); tests are not run here: `make test`.

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libnats-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libmicrohttpd-dev libssl-dev libgnutls28-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" \
 && make install DESTDIR=/out PREFIX=/usr/local \
 && test -x /out/usr/local/bin/playbookd \
 && test -x /out/usr/local/bin/falco-nats

FROM ${DEBIAN_IMAGE}
ARG DEBIAN_IMAGE
ARG DEBIAN_FRONTEND=noninteractive
ARG VERSION=dev
LABEL org.opencontainers.image.title="playbookd" \
      org.opencontainers.image.description="Kubernetes response engine: runs playbooks (delete-pod, taint-node, isolate-pod, slack) for Falco alerts received over NATS; includes the falco-nats forwarder" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${DEBIAN_IMAGE}"
# Runtime libraries of the -dev packages above (Debian 12 names).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libnats3.4 libcurl4 libcjson1 libyaml-0-2 libmicrohttpd12 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 playbookd \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin playbookd
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# Fail the build, not the pod, if a shared library is missing.
RUN for b in /usr/local/bin/*; do \
      if ldd "$b" | grep 'not found'; then echo "$b: missing library" >&2; exit 1; fi; \
    done \
 && /usr/local/bin/playbookd --version
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/playbookd"]
CMD ["-c", "/etc/playbookd/playbooks.yaml"]
