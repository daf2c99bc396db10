#!/usr/bin/env bash
# Print the framework image's tag: a hash of the content of framework_image/ (this folder).
#
#   clean folder   the git tree hash of the folder at HEAD (`git rev-parse HEAD:framework_image`)
#   changed folder the tree hash the folder would have if committed as it is on disk, plus "-dirty"
#
# A commit that leaves this folder alone keeps the tag, so the deploy finds the image already in
# the registry, skips the build and push, and the pipeline's ImageUri stays byte-identical.
# build-local.sh (default tag) and .github/scripts/deploy.sh both call this script: the tag has one
# definition. Nothing here writes to the repository: the changed-folder hash is computed with a
# scratch copy of the index and a scratch object directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# No opportunistic index refresh by `git status`: this script only reads the repository.
export GIT_OPTIONAL_LOCKS=0

if ! git rev-parse --verify --quiet HEAD >/dev/null 2>&1; then
    echo "image-tag.sh: $here is not in a git checkout with a commit; set IMAGE_TAG" >&2
    exit 1
fi

if [[ -z "$(git status --porcelain --untracked-files=all -- .)" ]]; then
    git rev-parse HEAD:./
    exit 0
fi

# Tracked changes and untracked files (ignored ones excepted, as in a commit) staged into a
# scratch index whose new objects go to a scratch directory; the real objects stay readable.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/objects"
index="$(git rev-parse --path-format=absolute --git-path index)"
objects="$(git rev-parse --path-format=absolute --git-path objects)"
prefix="$(git rev-parse --show-prefix)"
[[ -f "$index" ]] && cp "$index" "$scratch/index"
export GIT_INDEX_FILE="$scratch/index" GIT_OBJECT_DIRECTORY="$scratch/objects" GIT_ALTERNATE_OBJECT_DIRECTORIES="$objects"
git add --all -- .
tree="$(git write-tree --prefix="$prefix")"
echo "${tree}-dirty"
