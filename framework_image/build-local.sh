#!/usr/bin/env bash
# Build the framework image (framework_image/Dockerfile) on this machine and print its
# reference on the last line of stdout; every other output goes to stderr.
#
# Tag: ${IMAGE_NAME}:${IMAGE_TAG}, by default custom-framework:<image-tag.sh>, a hash of the
# content of framework_image/ (its git tree hash, "-dirty" when it has uncommitted changes): the
# tag the deploy (.github/scripts/deploy.sh) pushes, computed by the same script.
# The build context is exactly the files that hash covers (see "context" below).
#
# Environment overrides:
#   IMAGE_NAME  image name without tag (default: custom-framework)
#   IMAGE_TAG   tag (default: framework_image/image-tag.sh)
#   BASE_IMAGE  the Dockerfile's BASE_IMAGE (default: under docker, the Dockerfile's
#               python:3.12.15-slim-bookworm; under podman, a local Debian bookworm + python3 image)
#   ENGINE      docker or podman (default: docker if a Docker engine answers, else podman)
#   BUILD_NETWORK  the network of the build's RUN steps under docker (docker build --network;
#               default: the engine's). .ci/run sets host: its Docker engine has no NAT (no iptables).
#
# `build-local.sh base` only makes (or reuses) the podman stand-in base below and prints its
# reference: .ci/run loads it into its Docker engine, which cannot pull the Dockerfile's base here.
set -euo pipefail
case "${1:-}" in
"" | base) ;;
*)
    echo "usage: build-local.sh [base]" >&2
    exit 2
    ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d /var/tmp/build-local.XXXXXX)"
trap 'rm -rf "$work"' EXIT

IMAGE_NAME="${IMAGE_NAME:-custom-framework}"
if [[ -z "${IMAGE_TAG:-}" && "${1:-}" != base ]]; then
    IMAGE_TAG="$("$here/image-tag.sh")"
fi
image="${IMAGE_NAME}:${IMAGE_TAG:-}"

# The context: what git tracks or would track under framework_image/, as on disk, so ignored
# files (__pycache__, *.egg-info left by an editable install) never reach the image and the
# image holds the content its tag hashes. Timestamps are kept, so the layer cache still hits.
# Outside a git checkout (IMAGE_TAG given), the folder itself.
context="$here"
if [[ "${1:-}" != base ]] && git -C "$here" rev-parse --verify --quiet HEAD >/dev/null 2>&1; then
    context="$work/context"
    mkdir "$context"
    (
        cd "$here"
        git ls-files -z --cached --others --exclude-standard -- . |
            while IFS= read -r -d '' path; do
                if [[ -e "$path" || -L "$path" ]]; then printf '%s\0' "$path"; fi
            done |
            xargs -0 --no-run-if-empty cp --preserve=mode,timestamps --no-dereference --parents --target-directory="$context"
    )
fi

if [[ -z "${ENGINE:-}" ]]; then
    ENGINE=podman
    if command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1; then
        ENGINE=docker
    fi
fi

if [[ "$ENGINE" == docker && "${1:-}" != base ]]; then
    # BuildKit, as on GitHub's runners (buildx): it skips the Dockerfile's unused default-base stage,
    # which the legacy builder would pull. No attestation manifests (buildx adds provenance by
    # default in some set-ups): SageMaker needs a plain image manifest.
    DOCKER_BUILDKIT=1 BUILDX_NO_DEFAULT_ATTESTATIONS=1 \
        docker build ${BUILD_NETWORK:+--network "$BUILD_NETWORK"} ${BASE_IMAGE:+--build-arg "BASE_IMAGE=$BASE_IMAGE"} \
        --tag "$image" "$context" >&2
    echo "$image"
    exit 0
fi

# --- podman/buildah (Debian packages), as root -------------------------------------
if [[ "$EUID" -ne 0 ]]; then
    echo "build-local.sh: the podman build runs as root (storage, mmdebstrap); rerun with sudo" >&2
    exit 1
fi

# Debian's podman/buildah/runc/mmdebstrap are all the build needs; install what is missing.
missing=()
for tool in podman buildah runc mmdebstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi

# runc, not crun: cgroups here are hybrid (v1 controllers plus a v2 mount), which crun refuses.
runtime=(--runtime runc)
# podman's default nofile (1048576) is above the host's hard limit and runc then fails to
# start the container; stay at the host's hard limits, processes at most 32768.
nofile="$(ulimit -Hn)"
[[ "$nofile" == unlimited ]] && nofile=1048576
nproc="$(ulimit -Hu)"
[[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
ulimits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
# Storage: podman's default driver (overlay; podman info shows native overlay on ext4 here).

if [[ -z "${BASE_IMAGE:-}" ]]; then
    # No registry is reachable, so the base is made here: Debian bookworm minbase + python3 +
    # python3-venv (mmdebstrap, merged /usr without the usrmerge package and its perl), with
    # docs, man pages and locales left out, imported as an image. Its tag hashes this recipe:
    # an existing image is reused, and a changed recipe makes a new one (podman rmi to refresh).
    recipe=(
        --mode=root --variant=minbase --include=python3 --include=python3-venv
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
        --dpkgopt='path-exclude=/usr/share/locale/*'
        bookworm
    )
    mirrors=(
        "deb http://deb.debian.org/debian bookworm main"
        "deb http://deb.debian.org/debian bookworm-updates main"
        "deb http://deb.debian.org/debian-security bookworm-security main"
    )
    recipe_hash="$(printf '%s\n' "${recipe[@]}" "${mirrors[@]}" | sha256sum | cut -c1-12)"
    BASE_IMAGE="localhost/custom-framework-base:bookworm-python3-${recipe_hash}"
    if podman image exists "$BASE_IMAGE"; then
        echo "build-local.sh: reusing base image $BASE_IMAGE" >&2
    else
        mmdebstrap "${recipe[@]}" "$work/base.tar" "${mirrors[@]}" >&2
        # An imported image has no config: give it the usual PATH.
        podman import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["python3"]' \
            "$work/base.tar" "$BASE_IMAGE" >&2
    fi
fi
if [[ "${1:-}" == base ]]; then
    echo "$BASE_IMAGE"
    exit 0
fi

# pip inside the build must trust the host's CA bundle (the package index is reached
# through it): mount the bundle and a pip.conf naming it into every build step; neither
# ends up in an image layer.
ca_bundle=/etc/ssl/certs/ca-certificates.crt
volumes=()
if [[ -f "$ca_bundle" ]]; then
    printf '[global]\ncert = %s\n' "$ca_bundle" >"$work/pip.conf"
    volumes=(--volume "$ca_bundle:$ca_bundle:ro" --volume "$work/pip.conf:/etc/pip.conf:ro")
fi

# --format docker: the manifest type docker pushes, so a push from here looks like the deploy's.
podman build "${runtime[@]}" "${ulimits[@]}" "${volumes[@]}" --format docker \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$image" "$context" >&2
echo "$image"
