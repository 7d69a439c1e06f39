#!/usr/bin/env bash
# meson install into a DESTDIR, then what a packager and a user check:
#  - the daemon, the tools, libbypax (shared with its soname, and static),
#    its headers, bypax.pc, the systemd units and the example configs are
#    where docs/deploy.md ("Install") says;
#  - a small client (client.c) builds with `cc $(pkg-config --cflags
#    --libs bypax)` against the installed files alone, and runs: it reads
#    the installed example config and gets a clean timeout from nobody;
#  - the same client links the installed libbypax.a alone;
#  - neither links DPDK;
#  - systemd-analyze verify accepts the units (skipped when not there).
#
# Usage: check_install.sh SOURCE_ROOT BUILD_ROOT
# Exit status: 0 ok, 1 a check failed, 2 a setup error, 77 skipped.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 SOURCE_ROOT BUILD_ROOT" >&2
	exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
for tool in pkg-config cc python3; do
	command -v "$tool" >/dev/null || { echo "skip: no $tool"; exit 77; }
done
tmp=$(mktemp -d /tmp/bypax-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "ok: $*"; }

# The configured directories, as meson install uses them.
read -r prefix bindir libdir includedir datadir sysconfdir unitdir < <(python3 - "$build" <<'PY'
import json, os, sys
opts = {o["name"]: o["value"] for o in json.load(open(os.path.join(
    sys.argv[1], "meson-info", "intro-buildoptions.json")))}
p = opts["prefix"]
d = lambda k: os.path.join(p, opts[k])
unit = opts["systemd_unit_dir"] or os.path.join(p, "lib", "systemd", "system")
print(p, d("bindir"), d("libdir"), d("includedir"), d("datadir"),
      d("sysconfdir"), unit)
PY
)

meson install -C "$build" --destdir "$tmp" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
	fail "meson install --destdir: $(cat "$tmp/install.log")"
step "meson install --destdir $tmp (prefix $prefix)"

root=$tmp
want=(
	"$bindir/bypaxd" "$bindir/bypaxctl" "$bindir/bypax-cli" "$bindir/bypax-load"
	"$libdir/libbypax.so" "$libdir/libbypax.so.0" "$libdir/libbypax.a"
	"$libdir/pkgconfig/bypax.pc"
	"$includedir/bypax/client.h" "$includedir/bypax/config.h"
	"$includedir/bypax/wire.h" "$includedir/bypax/kv.h"
	"$includedir/bypax/errors.h" "$includedir/bypax/consensus.h"
	"$includedir/bypax/sm.h"
	"$unitdir/bypaxd@.service" "$unitdir/bypaxd-bootstrap@.service"
	"$datadir/doc/bypax/examples/bypax.conf"
	"$datadir/doc/bypax/examples/bypaxd-0.env"
	"$datadir/doc/bypax/deploy.md"
)
for f in "${want[@]}"; do
	[[ -e "$root$f" ]] || fail "not installed: $f"
done
step "${#want[@]} files installed where docs/deploy.md says"

# What docs/deploy.md, "Run under systemd", says of the units.
unit=$root$unitdir/bypaxd@.service
boot=$root$unitdir/bypaxd-bootstrap@.service
for line in "Type=notify" "WatchdogSec=10s" "Restart=on-failure" "RuntimeDirectory=bypax" \
	"RuntimeDirectoryPreserve=yes" "TimeoutStartSec=5min" "LimitMEMLOCK=infinity" \
	"EnvironmentFile=$sysconfdir/bypax/bypaxd-%i.env" "Conflicts=bypaxd-bootstrap@%i.service" \
	"ExecStart=$bindir/bypaxd \$BYPAXD_EAL_ARGS -- --config $sysconfdir/bypax/bypax.conf --id %i \$BYPAXD_ARGS"; do
	grep -qxF -- "$line" "$unit" || fail "bypaxd@.service lacks '$line'"
done
grep -q -- "--bootstrap" <(grep -v '^#' "$unit") && fail "bypaxd@.service passes --bootstrap"
for line in "Type=notify" "Restart=no" "OnFailure=bypaxd@%i.service" "Conflicts=bypaxd@%i.service"; do
	grep -qxF -- "$line" "$boot" || fail "bypaxd-bootstrap@.service lacks '$line'"
done
grep -q "^\[Install\]" "$boot" && fail "bypaxd-bootstrap@.service can be enabled"
grep -qxF "BYPAXD_EAL_ARGS=-l 2-3 -a 0000:3b:00.0 --file-prefix bypax0" \
	"$root$datadir/doc/bypax/examples/bypaxd-0.env" || fail "bypaxd-0.env: no PCI EAL args"
step "the units: Type=notify, watchdog, restart without --bootstrap; bootstrap unit once"

soname=$(objdump -p "$root$libdir/libbypax.so" | awk '$1 == "SONAME" {print $2}')
[[ $soname == libbypax.so.0 ]] || fail "libbypax.so has soname '$soname', expected libbypax.so.0"
step "libbypax.so: soname $soname"

# The installed .pc, relocated into the DESTDIR (sysroot prefixes -I, -L).
export PKG_CONFIG_PATH=$root$libdir/pkgconfig PKG_CONFIG_LIBDIR=$root$libdir/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
flags=$(pkg-config --cflags --libs bypax) || fail "pkg-config bypax"
step "pkg-config --cflags --libs bypax: $flags"
# shellcheck disable=SC2086 # flags are words
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/client" "$src/tests/install/client.c" $flags ||
	fail "cc client.c \$(pkg-config --cflags --libs bypax)"
conf=$root$datadir/doc/bypax/examples/bypax.conf
out=$(LD_LIBRARY_PATH=$root$libdir "$tmp/client" "$conf") || fail "client: $out"
expected="cluster 7: 3 members
member0 10.10.0.1:9000
member1 10.10.0.2:9000
member2 10.10.0.3:9000
get from nobody: timed out"
[[ $out == "$expected"* ]] || fail "client printed:
$out
expected:
$expected"
# (ldd's output captured first: grep -q would close the pipe early, and
# pipefail would call ldd's SIGPIPE a failure.)
libs=$(LD_LIBRARY_PATH=$root$libdir ldd "$tmp/client")
grep -qF "libbypax.so.0 => $root$libdir/libbypax.so.0" <<<"$libs" ||
	fail "the client does not load the installed libbypax.so.0: $libs"
step "a client built with pkg-config reads the installed example config and times out cleanly"

cc -std=c11 -Wall -Wextra -Werror -o "$tmp/client-static" "$src/tests/install/client.c" \
	"$(pkg-config --variable=includedir bypax | sed 's/^/-I/')" "$root$libdir/libbypax.a" ||
	fail "cc client.c libbypax.a: the static library is not self-contained"
"$tmp/client-static" "$conf" >/dev/null || fail "client-static failed"
step "the same client links the installed libbypax.a alone"

for b in "$tmp/client" "$tmp/client-static" "$root$bindir/bypaxctl" \
	"$root$bindir/bypax-cli" "$root$bindir/bypax-load" "$root$libdir/libbypax.so.0"; do
	libs=$(LD_LIBRARY_PATH=$root$libdir ldd "$b" 2>&1 || true)
	grep -q librte_ <<<"$libs" && fail "${b#"$tmp"} links DPDK: $libs"
done
step "no installed client, tool or libbypax links librte_"

if command -v systemd-analyze >/dev/null; then
	# An instance of each template, with the paths it names present.
	mkdir -p "$tmp/verify"
	for u in bypaxd bypaxd-bootstrap; do
		sed "s#$bindir/bypaxd#$root$bindir/bypaxd#; s#$sysconfdir/bypax/bypaxd-%i.env#-$tmp/none.env#" \
			"$root$unitdir/$u@.service" >"$tmp/verify/$u@.service"
		ln -sf "$u@.service" "$tmp/verify/$u@0.service"
	done
	if ! out=$(cd "$tmp/verify" && SYSTEMD_LOG_LEVEL=warning \
		systemd-analyze verify --man=no "$tmp/verify/bypaxd@0.service" \
		"$tmp/verify/bypaxd-bootstrap@0.service" 2>&1); then
		fail "systemd-analyze verify: $out"
	fi
	# Warnings about this sandbox (no systemd running) are not the unit's.
	bad=$(grep -v -e "Failed to connect" -e "System has not been booted" \
		<<<"$out" | grep -i "bypaxd" || true)
	[[ -z "$bad" ]] || fail "systemd-analyze verify: $bad"
	step "systemd-analyze verify: the units are accepted${out:+ (said: $(head -c 200 <<<"$out"))}"
else
	echo "skip: systemd-analyze not installed: the units are not verified"
fi
echo "install: ok"
