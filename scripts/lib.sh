# Shared by scripts/test and scripts/demo: install what is missing, then
# configure and build. Source it; it defines functions and sets nothing else
# but BPX_ROOT (the repository root) and BPX_STEP (the step in progress,
# for the caller's failure summary).
#
# shellcheck shell=bash
# shellcheck disable=SC2034 # BPX_STEP is read by the callers

BPX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BPX_STEP="starting"

# Debian 12 packages the build and the tests need.
BPX_PACKAGES=(
	dpdk-dev libdpdk-dev libnuma-dev libcmocka-dev libbenchmark-dev
	libsodium-dev
	meson ninja-build pkg-config g++ clang gcc
	prometheus curl
	linux-perf
)

bpx_say()
{
	echo "==> $*"
}

bpx_die()
{
	echo "error: $*" >&2
	exit 1
}

# Install the packages of BPX_PACKAGES that are missing. Quick when nothing
# is: one dpkg-query, no apt-get at all.
bpx_install_deps()
{
	BPX_STEP="installing packages"
	if ! command -v dpkg-query >/dev/null 2>&1; then
		bpx_say "no dpkg-query: not a Debian system, assuming the" \
			"packages are installed (${BPX_PACKAGES[*]})"
		return 0
	fi

	local missing=() pkg status
	for pkg in "${BPX_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" \
			2>/dev/null || true)
		[[ "$status" == installed ]] || missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0

	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 ||
			bpx_die "missing packages: ${missing[*]}; run as root" \
				"or install them"
		sudo=(sudo)
	fi
	bpx_say "installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
}

# bpx_configure DIR [MESON_OPTION...]: meson setup, or --reconfigure when
# DIR already holds a configured build.
bpx_configure()
{
	local dir=$1
	shift
	BPX_STEP="configuring $dir"
	bpx_say "configuring $dir${*:+ ($*)}"
	if [[ -d "$BPX_ROOT/$dir/meson-private" ]]; then
		meson setup --reconfigure "$@" "$BPX_ROOT/$dir" "$BPX_ROOT"
	else
		meson setup "$@" "$BPX_ROOT/$dir" "$BPX_ROOT"
	fi
}

# bpx_build DIR
bpx_build()
{
	local dir=$1
	BPX_STEP="building $dir"
	bpx_say "building $dir"
	ninja -C "$BPX_ROOT/$dir"
}

# bpx_suites DIR: the test suites DIR defines, one per line (no project
# prefix), from meson's introspection of the configured build.
bpx_suites()
{
	local dir=$1
	meson introspect --tests "$BPX_ROOT/$dir" | python3 -c '
import json, sys
suites = set()
for t in json.load(sys.stdin):
    for s in t.get("suite", []):
        suites.add(s.split(":", 1)[-1])
print("\n".join(sorted(suites)))
'
}

# bpx_prepare DIR [MESON_OPTION...]: install, configure and build DIR.
bpx_prepare()
{
	local dir=$1
	shift
	bpx_install_deps
	bpx_configure "$dir" "$@"
	bpx_build "$dir"
}
