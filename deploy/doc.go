// Package deploy holds jitsi-signer's deployment files: the container image
// (../Dockerfile), Kubernetes manifests, Prometheus rules, a Grafana
// dashboard and a local Jitsi in docker-compose. Its tests check them
// against the service itself: its settings, listeners, routes and metrics.
package deploy
