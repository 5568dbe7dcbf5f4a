#!/usr/bin/env bash
# Installs the grpc-go interop server (pinned) with `go install` when it is missing and
# prints its path; the interop cases and the fault suite run against it.
set -euo pipefail
version=v1.85.0
gobin="$(go env GOPATH)/bin"
server="$gobin/server"
stamp="$gobin/.grpc-interop-server-$version"
if [ ! -x "$server" ] || [ ! -e "$stamp" ]; then
  echo "installing the grpc-go interop server $version" >&2
  go install "google.golang.org/grpc/interop/server@$version"
  touch "$stamp"
fi
echo "$server"
