# syntax=docker/dockerfile:1
#
# jitsi-signer image: a static binary on distroless, running as non-root.
#
#   docker build -t jitsi-signer \
#     --build-arg VERSION="$(git describe --tags --always)" \
#     --build-arg REVISION="$(git rev-parse --short HEAD)" .

FROM golang:1.26 AS build
ARG VERSION=dev
ARG REVISION=unknown
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY pkg ./pkg
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/jitsi-signer ./cmd/jitsi-signer

# distroless/static: CA certificates, /etc/passwd with the nonroot user,
# no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jitsi-signer /jitsi-signer
# Inside a container the listeners must bind every interface; the defaults
# (loopback) would be unreachable from outside the container.
ENV SIGNER_ADDR=0.0.0.0:8080 \
    SIGNER_ADMIN_ADDR=0.0.0.0:9090
# 8080: API (POST /v1/links). 9090: admin (/healthz, /readyz, /metrics).
EXPOSE 8080 9090
# The distroless "nonroot" user, by number, so that Kubernetes'
# runAsNonRoot can verify it.
USER 65532:65532
# Exec form: there is no shell. The subcommand probes /readyz on
# SIGNER_ADMIN_ADDR and exits 0 when the service is ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/jitsi-signer", "healthcheck"]
ENTRYPOINT ["/jitsi-signer"]
