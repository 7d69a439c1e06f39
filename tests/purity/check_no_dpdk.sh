#!/usr/bin/env bash
# The clients need no DPDK (DESIGN.md: wire/ and config/ are the pure codec
# and config reader shared by the dataplane, the clients and the tools).
#  1. Sources: nothing under wire/ or config/, no source of libbypax or of
#     the tools (client/), and no public header includes an rte_ header.
#  2. Binaries: ldd of bypax-cli, bypaxctl, bypax-load and libbypax.so
#     lists no librte_, and libbypax.a refers to no rte_ symbol.
#
# Usage: check_no_dpdk.sh SOURCE_ROOT BUILD_ROOT
# Exit status: 0 when clean, 1 on any violation, 2 on a usage or setup error.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 SOURCE_ROOT BUILD_ROOT" >&2
	exit 2
fi
src_root=$(cd "$1" && pwd)
build_root=$(cd "$2" && pwd)
violations=0

violation() {
	echo "no-dpdk: $*"
	violations=$((violations + 1))
}

# --- 1. Sources ---------------------------------------------------------------
sources=()
for dir in wire config client include/bypax; do
	while IFS= read -r f; do
		sources+=("$f")
	done < <(find "$src_root/$dir" -name '*.[ch]' | sort)
done
[[ ${#sources[@]} -gt 0 ]] || { echo "no-dpdk: no sources found" >&2; exit 2; }
while IFS= read -r hit; do
	[[ -n "$hit" ]] && violation "${hit#"$src_root"/}: includes a DPDK header"
done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](rte_|dpdk/)' \
	"${sources[@]}" || true)

# --- 2. Linked binaries ---------------------------------------------------------
binaries=(client/bypax-cli client/bypaxctl client/bypax-load client/libbypax.so)
for rel in "${binaries[@]}"; do
	bin="$build_root/$rel"
	[[ -e "$bin" ]] || { echo "no-dpdk: $rel: missing (build it first)" >&2; exit 2; }
	if ! libs=$(ldd "$bin" 2>&1); then
		echo "no-dpdk: ldd $rel failed: $libs" >&2
		exit 2
	fi
	while IFS= read -r lib; do
		[[ -n "$lib" ]] && violation "$rel links ${lib%% *}"
	done < <(grep -o 'librte_[^ ]*' <<<"$libs" || true)
done
archive="$build_root/client/libbypax.a"
[[ -f "$archive" ]] || { echo "no-dpdk: client/libbypax.a: missing" >&2; exit 2; }
while IFS= read -r sym; do
	[[ -n "$sym" ]] && violation "client/libbypax.a refers to $sym"
done < <(nm -u "$archive" | awk '{print $NF}' | grep -E '^rte_' | sort -u || true)

if [[ $violations -ne 0 ]]; then
	echo "no-dpdk: ${#sources[@]} sources, ${#binaries[@]} binaries checked, $violations violations"
	exit 1
fi
echo "no-dpdk: ${#sources[@]} sources, ${#binaries[@]} binaries and libbypax.a checked, 0 violations"
