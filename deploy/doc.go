// Package deploy holds identityd's deployment files — the container image (Dockerfile), Docker Compose
// (compose.yaml), Kubernetes manifests (k8s/) and a systemd unit (identityd.service) — and a test that loads
// them with their own ecosystems' libraries (Compose's loader and schema; kustomize's build, decoded strictly
// into the Kubernetes API types) and checks they agree with the code: ports, probe paths, environment variable
// names, subcommands and shutdown grace periods. No container engine runs in CI, so that test is the check.
package deploy
