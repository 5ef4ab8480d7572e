#!/usr/bin/env bash
# Puts the corpora where the experiments look by default (data/text8/, data/tinystories/):
# the full public files when this machine can download them, otherwise the verified prefixes in ../shared/data.
#   data/fetch.sh [--offline]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${WAVRES_SHARED_DATA:-$here/../../shared/data}
offline=${1:-}
mkdir -p "$here/text8" "$here/tinystories"
log() { printf '[fetch] %s\n' "$*" >&2; }

try_download() {  # url dest: 20 s to connect, then as long as it takes
  [ "$offline" = --offline ] && return 1
  command -v curl >/dev/null || return 1
  curl -fsSL --connect-timeout 20 -o "$2.part" "$1" && mv "$2.part" "$2" || { rm -f "$2.part"; return 1; }
}
link_copy() {  # name in shared, dest
  if [ -f "$shared/$1" ]; then ln -sfn "$(cd "$(dirname "$shared/$1")" && pwd)/$(basename "$1")" "$2"; return 0; fi
  return 1
}

# text8: 100,000,000 bytes (standard split 90M/5M/5M)
if [ ! -f "$here/text8/text8" ]; then
  if try_download http://mattmahoney.net/dc/text8.zip "$here/text8/text8.zip" &&
     (cd "$here/text8" && unzip -oq text8.zip && rm -f text8.zip); then
    log "text8: downloaded the full corpus"
  elif link_copy text8/text8-prefix "$here/text8/text8-prefix"; then
    log "text8: offline, using the prefix copy ($shared/text8/text8-prefix)"
  else
    log "text8: no download and no copy in $shared"; exit 1
  fi
fi
# TinyStories: full train/valid files
if [ ! -f "$here/tinystories/TinyStories-train.txt" ]; then
  base=https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main
  if try_download "$base/TinyStories-valid.txt" "$here/tinystories/TinyStories-valid.txt" &&
     try_download "$base/TinyStories-train.txt" "$here/tinystories/TinyStories-train.txt"; then
    log "tinystories: downloaded the full corpus"
  else
    rm -f "$here/tinystories/TinyStories-valid.txt"
    if link_copy tinystories/train-prefix.txt "$here/tinystories/train-prefix.txt" &&
       link_copy tinystories/valid-subset.txt "$here/tinystories/valid-subset.txt"; then
      log "tinystories: offline, using the prefix/subset copies in $shared/tinystories"
    else
      log "tinystories: no download and no copy in $shared"; exit 1
    fi
  fi
fi
exit 0
