#!/usr/bin/env bash
# The deploy job's sequence, in one place: .github/workflows/deploy.yml runs it on GitHub (docker,
# ECR, the account), tests/test_deploy_rehearsal.py runs it here (podman, a registry on loopback,
# moto). Nothing in the workflow builds, pushes or upserts by itself.
#
# deploy.sh deploy
#   1. tag     T = framework_image/image-tag.sh, a hash of the content of framework_image/
#   2. skip    REGISTRY/REPOSITORY:T already exists: only step 5 ever pushes a content tag, so it
#              was tested; go to 6 (no build, no push, and the pipeline's ImageUri is unchanged)
#   3. build   framework_image/build-local.sh
#   4. stage   push it as REPOSITORY:untested, remove its local names, pull it back by digest
#              (under podman into an empty store): the tests then run on the bytes the registry
#              serves, never on a local leftover
#   5. test    pytest -m container with CONTAINER_IMAGE=<that digest>; on success push the same
#              digest as REPOSITORY:T and check the registry stored that digest
#   6. upsert  IMAGE_URI=REGISTRY/REPOSITORY:T python -m pipeline upsert
#   An image that fails step 5 never gets a content tag and is never upserted.
#
# deploy.sh plan
#   python -m pipeline diff against the account, with the IMAGE_URI a deploy of this checkout would
#   use; read-only (the plan role allows nothing else). Exit 0 whether or not the pipeline differs.
#
# Environment:
#   REGISTRY      registry host[:port]; without it, the ECR registry of AWS_ACCOUNT_ID (else the
#                 account of the credentials) in AWS_REGION
#   REPOSITORY    repository in that registry (the ECR repository)
#   ENGINE        docker or podman (default: docker if a Docker engine answers, else podman)
#   TLS_VERIFY    false for a plain-HTTP registry under podman (docker allows 127.0.0.0/8 by itself)
#   PYTHON        the project's Python (default: .venv/bin/python)
#   DEPLOY_FAULT  skip-pull: leave out the pull of step 4; the rehearsal must then fail (a test shows it)
#   DEPLOY_TESTS  what step 5 runs (default: the tests that prove the image: train, process and serve in
#                 it; the SDK-local-mode parity suite stays in CI); space-separated test paths
#   and the CLI's settings: AWS_REGION, SAGEMAKER_BUCKET, SAGEMAKER_ROLE_ARN, PIPELINE_NAME, PIPELINE_TAGS
# stdout: the image reference, last line. GITHUB_STEP_SUMMARY, when set, gets a summary.
set -euo pipefail

# The tests that prove an image: a training job, a processing job and the serving stack in it.
IMAGE_TESTS="tests/test_container.py tests/test_container_serve.py"
# Functions called as $(...) stop at their first failure too (a failed push must not reuse a digest).
shopt -s inherit_errexit

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-.venv/bin/python}"
CANDIDATE_TAG=untested

log() { echo "deploy.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# REGISTRY, else the account's ECR registry (the plan job has no ECR login, only an account).
registry() {
    local account="${AWS_ACCOUNT_ID:-}"
    if [[ -n "${REGISTRY:-}" ]]; then
        echo "$REGISTRY"
        return
    fi
    [[ -n "${AWS_REGION:-}" ]] || die "set REGISTRY, or AWS_REGION (and AWS_ACCOUNT_ID or credentials)"
    if [[ -z "$account" ]]; then
        account="$("$PYTHON" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')"
    fi
    echo "$account.dkr.ecr.$AWS_REGION.amazonaws.com"
}

engine() {
    if [[ -n "${ENGINE:-}" ]]; then
        echo "$ENGINE"
    elif command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1; then
        echo docker
    else
        echo podman
    fi
}

# True when the tag is in the registry. Any failure to tell reads as "absent": the deploy then
# builds and tests again, the safe side.
tag_exists() { # repository tag
    if [[ "$ENGINE" == podman ]]; then
        # podman 4.3 prints a NAME TAG table whatever --format says.
        podman search --list-tags --limit 100000 "${tls[@]}" "$1" 2>/dev/null |
            awk -v tag="$2" 'NR > 1 && $2 == tag { found = 1 } END { exit !found }'
    else
        local insecure=()
        [[ "$1" == 127.0.0.1:* || "$1" == localhost:* ]] && insecure=(--insecure)
        docker manifest inspect "${insecure[@]}" "$1:$2" >/dev/null 2>&1
    fi
}

# Push and print the digest the registry stored.
push() { # reference
    local digest
    if [[ "$ENGINE" == podman ]]; then
        rm -f "$scratch/digest"
        podman push "${tls[@]}" --digestfile "$scratch/digest" "$1" >&2
        digest="$(cat "$scratch/digest")"
    else
        digest="$(docker push "$1" | tee /dev/stderr | sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p' | tail -n 1)"
    fi
    [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "pushed $1 but could not read its digest"
    echo "$digest"
}

pull() { # reference
    if [[ "$ENGINE" == podman ]]; then
        podman pull "${tls[@]}" "$1" >&2
    else
        docker pull "$1" >&2
    fi
}

# podman resolves NAME@DIGEST to any local image that ever had that digest, whatever its name,
# so removing the names is not enough: the pull, the tests and the final push use an empty store
# of their own (CONTAINERS_STORAGE_CONF), removed on exit. docker keeps digest references per
# repository and drops them with the repository's last tag, so removing the names is enough there.
use_empty_store() {
    [[ "$ENGINE" == podman ]] || return 0
    store="$(mktemp -d /var/tmp/deploy-store.XXXXXX)"
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n' "$store" "$store" >"$store/storage.conf"
    export CONTAINERS_STORAGE_CONF="$store/storage.conf"
}

cleanup() {
    if [[ -n "$store" ]]; then
        CONTAINERS_STORAGE_CONF="$store/storage.conf" podman rmi --all --force >/dev/null 2>&1 || true
        rm -rf "$store"
    fi
    rm -rf "$scratch"
}

summary() { # line...
    if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
        printf '%s\n' "$@" >>"$GITHUB_STEP_SUMMARY"
    fi
}

cmd_plan() {
    local host tag image status=0
    host="$(registry)"
    tag="$(framework_image/image-tag.sh)"
    image="$host/${REPOSITORY:?set REPOSITORY}:$tag"
    log "diff with IMAGE_URI=$image"
    IMAGE_URI="$image" "$PYTHON" -m pipeline diff >"$scratch/diff" || status=$?
    cat "$scratch/diff"
    # Exit 1 means "differs" only with the differences printed; a crash exits 1 with nothing.
    if ((status > 1)) || { ((status == 1)) && [[ ! -s "$scratch/diff" ]]; }; then
        die "pipeline diff failed (exit $status)"
    fi
    summary "### Pipeline plan" "" "image: \`$image\`" "" '```' "$(cat "$scratch/diff")" '```'
}

cmd_deploy() {
    local repository tag image candidate digest stored
    repository="$(registry)/${REPOSITORY:?set REPOSITORY}"
    tag="$(framework_image/image-tag.sh)"
    image="$repository:$tag"

    if tag_exists "$repository" "$tag"; then
        log "$image is in the registry (tested when it was pushed): no build, no push"
        summary "### Deployed" "- image \`$image\`, already in the registry: not rebuilt"
    else
        log "building $image"
        ENGINE="$ENGINE" IMAGE_NAME="$repository" IMAGE_TAG="$tag" framework_image/build-local.sh >&2

        candidate="$repository:$CANDIDATE_TAG"
        $ENGINE tag "$image" "$candidate"
        digest="$(push "$candidate")"
        # From here on only a pull can bring the image back under this repository's name.
        $ENGINE rmi "$image" "$candidate" >&2
        use_empty_store
        if [[ "${DEPLOY_FAULT:-}" == skip-pull ]]; then
            log "DEPLOY_FAULT=skip-pull: not pulling $repository@$digest"
        else
            pull "$repository@$digest"
        fi

        log "testing $repository@$digest"
        # shellcheck disable=SC2086 # DEPLOY_TESTS is a list of paths
        CONTAINER_IMAGE="$repository@$digest" ENGINE="$ENGINE" "$PYTHON" -m pytest -m container \
            ${DEPLOY_TESTS:-$IMAGE_TESTS} >&2 ||
            die "the container tests failed on $repository@$digest: not tagged $tag, not upserted"

        $ENGINE tag "$repository@$digest" "$image"
        stored="$(push "$image")"
        [[ "$stored" == "$digest" ]] || die "the registry stored $image as $stored, not the tested $digest"
        summary "### Deployed" "- image \`$image\` (\`$digest\`): built, tested as pulled from the registry, pushed"
    fi

    log "upserting the pipeline with IMAGE_URI=$image"
    IMAGE_URI="$image" "$PYTHON" -m pipeline upsert | tee "$scratch/upsert" >&2
    summary "- pipeline \`${PIPELINE_NAME:-custom-framework-training}\` in \`${AWS_REGION:-}\`:" \
        '```' "$(cat "$scratch/upsert")" '```' \
        "- SageMaker Studio: Pipelines, choose the pipeline, then Create execution to start a run"
    echo "$image"
}

case "${DEPLOY_FAULT:-}" in
"" | skip-pull) ;;
*) die "unknown DEPLOY_FAULT=$DEPLOY_FAULT (only skip-pull exists)" ;;
esac
scratch="$(mktemp -d)"
store=""
trap cleanup EXIT
ENGINE="$(engine)"
tls=()
if [[ "$ENGINE" == podman && "${TLS_VERIFY:-true}" == false ]]; then
    tls=(--tls-verify=false)
fi

case "${1:-}" in
plan) cmd_plan ;;
deploy) cmd_deploy ;;
*) die "usage: deploy.sh deploy|plan" ;;
esac
