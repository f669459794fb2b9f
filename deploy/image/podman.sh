# Sourced by deploy/image/build.sh and tests/deploy/image_test.sh: podman as
# rowgate's image scripts run it, on machines with no Docker engine and no
# cgroup delegation: vfs storage (no overlay mounts), cgroupfs and a file
# event log (no systemd). PODMAN_FLAGS adds to these. `pm ARGS` runs it;
# "${PM[@]}" is the command, for `timeout`.
# shellcheck disable=SC2206
PM=(podman --storage-driver=vfs --cgroup-manager=cgroupfs --events-backend=file ${PODMAN_FLAGS:-})
pm() { "${PM[@]}" "$@"; }
