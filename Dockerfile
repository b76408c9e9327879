# syntax=docker/dockerfile:1
#
# dirsync container image: a static binary on distroless, running as the
# non-root user 65532. Build:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t dirsync .
#
# Run (config mounted read-only; secrets through ${ENV} or file: in it):
#
#   docker run -v ./config.yaml:/etc/dirsync/config.yaml:ro -p 8080:8080 dirsync
#
# The config must listen on all interfaces in a container
# (http.listen: 0.0.0.0:8080); the default is 127.0.0.1:8080. With the
# embedded state backend, mount a volume at /var/lib/dirsync and set
# state.path: /var/lib/dirsync/dirsync.db. The Ezeelogin connector's command
# prefix (php, ssh) needs those programs, which this image does not carry.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so the download layer is cached across source changes.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dirsync ./cmd/dirsync \
 && mkdir -p /out/state

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), tzdata;
# no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="dirsync" \
      org.opencontainers.image.description="Directory sync daemon: LDAP/AD and SCIM to application accounts" \
      org.opencontainers.image.source="https://github.com/dirsync/dirsync" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/dirsync /dirsync
COPY --from=build --chown=65532:65532 /out/state /var/lib/dirsync
USER 65532:65532
WORKDIR /var/lib/dirsync
ENV DIRSYNC_CONFIG=/etc/dirsync/config.yaml
EXPOSE 8080
ENTRYPOINT ["/dirsync"]
CMD ["run", "--config", "/etc/dirsync/config.yaml"]
