// Package deploy holds dirsync's deployment files (the systemd unit and the
// Kubernetes manifests); its tests check them, and the Dockerfile at the
// repository root, without a Docker engine or a cluster.
package deploy
