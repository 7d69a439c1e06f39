#!/usr/bin/env bash
# The purity rule of DESIGN.md, enforced: consensus/ and the pure parts of
# control/ (fd, omega, ctl_wire, ctl_policy, ratelimit) and the client engine
# (client/engine.c: the retry/redirect/session rules shared by libbypax, the
# load generator and the simulator) are deterministic state machines that
# call nothing outside libc's string functions.
#
# Two checks, so that a violation cannot hide from one of them:
#  1. Sources: every #include is on an allowlist, and no forbidden call
#     (allocation, clocks, randomness, stdio, threads, DPDK, sockets, sleep)
#     appears outside comments and strings. Project headers that these files
#     include are checked too, transitively.
#  2. Objects: every undefined symbol of the compiled static libraries is on
#     an allowlist or defined by one of those libraries. This catches what
#     the source scan cannot see (macros, implicit declarations, builtins
#     lowered to calls).
#
# Usage: check_purity.sh SOURCE_ROOT BUILD_ROOT
# Exit status: 0 when pure, 1 on any violation, 2 on a usage or setup error.
# Each violation is one line: FILE:LINE: RULE.

set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 SOURCE_ROOT BUILD_ROOT" >&2
	exit 2
fi
src_root=$(cd "$1" && pwd)
build_root=$(cd "$2" && pwd)

# The compiled pure libraries (paths as consensus/, control/meson.build and
# the top-level meson.build name them).
libs=(
	"$build_root/consensus/libbypax_consensus.a"
	"$build_root/control/libbypax_control_pure.a"
	"$build_root/libbypax_client_engine.a"
)

violations=0
files_checked=0

# --- 1. Source scan ----------------------------------------------------------

source_report=$(python3 - "$src_root" <<'PY'
import os
import re
import sys

root = sys.argv[1]

# Headers a pure file may include: types, limits and the string functions.
# Not <assert.h>: PX_ASSERT is always on and must not depend on NDEBUG.
ALLOWED_SYSTEM = {"stdint.h", "stddef.h", "stdbool.h", "string.h", "limits.h"}

# Calls: flagged as NAME( unless reached through . or -> (a struct member).
FORBIDDEN_CALLS = {
    "malloc": "allocation", "calloc": "allocation", "realloc": "allocation",
    "free": "allocation", "aligned_alloc": "allocation",
    "posix_memalign": "allocation", "alloca": "allocation",
    "strdup": "allocation", "strndup": "allocation",
    "rand": "randomness outside the state's PRNG",
    "random": "randomness outside the state's PRNG",
    "srand": "randomness outside the state's PRNG",
    "srandom": "randomness outside the state's PRNG",
    "rand_r": "randomness outside the state's PRNG",
    "getrandom": "randomness outside the state's PRNG",
    "time": "clock: time comes in as an argument",
    "clock": "clock: time comes in as an argument",
    "clock_gettime": "clock: time comes in as an argument",
    "gettimeofday": "clock: time comes in as an argument",
    "printf": "stdio", "fprintf": "stdio", "sprintf": "stdio",
    "snprintf": "stdio", "vprintf": "stdio", "vfprintf": "stdio",
    "vsnprintf": "stdio", "dprintf": "stdio", "puts": "stdio",
    "fputs": "stdio", "putchar": "stdio", "perror": "stdio",
    "fopen": "stdio", "fwrite": "stdio", "fread": "stdio",
    "abort": "abort (use PX_ASSERT / __builtin_trap)",
    "exit": "process exit", "_Exit": "process exit",
    "getenv": "environment",
    "socket": "sockets", "bind": "sockets", "sendto": "sockets",
    "recvfrom": "sockets",
    "sleep": "sleeping", "usleep": "sleeping", "nanosleep": "sleeping",
}
# Any identifier with these prefixes, call or not.
FORBIDDEN_PREFIXES = {
    "rte_": "DPDK (rte_*)",
    "pthread_": "threads (pthread_*)",
    "thrd_": "threads (thrd_*)",
    "mtx_": "threads (mtx_*)",
}
FORBIDDEN_WORDS = {
    "_Thread_local": "threads (_Thread_local)",
    "thread_local": "threads (thread_local)",
}

call_re = re.compile(r"(?<![\w.>])(" + "|".join(
    sorted(FORBIDDEN_CALLS, key=len, reverse=True)) + r")\s*\(")
prefix_re = re.compile(r"\b(" + "|".join(FORBIDDEN_PREFIXES) + r")\w*")
word_re = re.compile(r"\b(" + "|".join(FORBIDDEN_WORDS) + r")\b")
include_re = re.compile(r"^\s*#\s*include\s*(.*)$")


def strip(text):
    """Blank comments and string/char literals, keeping line numbers and
    the text of #include lines (whose "..." is a path, not a string)."""
    out = []
    i, n = 0, len(text)
    line_start = True
    in_include = False
    while i < n:
        c = text[i]
        if c == "\n":
            out.append(c)
            i += 1
            line_start = True
            in_include = False
            continue
        if line_start and not c.isspace():
            in_include = bool(re.match(r"#\s*include\b", text[i:i + 40]))
            line_start = False
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if c in "\"'" and not in_include:
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * max(0, j - i - 2) + (c if j - i >= 2 else ""))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def rel(path):
    return os.path.relpath(path, root)


# The pure set: everything under consensus/, control's fd, omega, ctl_wire,
# ctl_policy and ratelimit, and the client engine.
todo = []
for dirpath, _, names in os.walk(os.path.join(root, "consensus")):
    for name in sorted(names):
        if name.endswith((".c", ".h")):
            todo.append(os.path.join(dirpath, name))
for name in ("fd.c", "fd.h", "omega.c", "omega.h", "ctl_wire.c", "ctl_wire.h",
             "ctl_policy.c", "ctl_policy.h", "ctl_link.h", "ratelimit.c",
             "ratelimit.h"):
    path = os.path.join(root, "control", name)
    if os.path.exists(path):
        todo.append(path)
for name in ("engine.c", "engine.h"):
    path = os.path.join(root, "client", name)
    if os.path.exists(path):
        todo.append(path)
pure = set(os.path.realpath(p) for p in todo)

seen = set()
violations = []
while todo:
    path = os.path.realpath(todo.pop(0))
    if path in seen:
        continue
    seen.add(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        code = strip(f.read())
    for lineno, line in enumerate(code.split("\n"), 1):
        where = "%s:%d" % (rel(path), lineno)
        m = include_re.match(line)
        if m:
            arg = m.group(1).strip()
            sm = re.match(r"<([^>]+)>", arg)
            qm = re.match(r'"([^"]+)"', arg)
            if sm:
                if sm.group(1) not in ALLOWED_SYSTEM:
                    violations.append("%s: include <%s> is not allowed in "
                                      "pure code (allowed: %s)" % (
                                          where, sm.group(1),
                                          ", ".join(sorted(ALLOWED_SYSTEM))))
            elif qm:
                name = qm.group(1)
                local = os.path.join(os.path.dirname(path), name)
                public = os.path.join(root, "include", name)
                if name.startswith("bypax/") and os.path.exists(public):
                    # A public header: pure only if it is itself pure.
                    todo.append(public)
                elif os.path.exists(local) and os.path.realpath(local) in pure:
                    pass  # checked on its own as part of the pure set
                else:
                    violations.append("%s: include \"%s\" is neither a "
                                      "bypax/ header nor a pure local header"
                                      % (where, name))
            else:
                violations.append("%s: computed #include %s" % (where, arg))
            continue
        for m in call_re.finditer(line):
            violations.append("%s: forbidden call %s(): %s" % (
                where, m.group(1), FORBIDDEN_CALLS[m.group(1)]))
        for m in prefix_re.finditer(line):
            violations.append("%s: forbidden identifier %s: %s" % (
                where, m.group(0), FORBIDDEN_PREFIXES[m.group(1)]))
        for m in word_re.finditer(line):
            violations.append("%s: forbidden %s" % (
                where, FORBIDDEN_WORDS[m.group(1)]))

for v in violations:
    print("V " + v)
print("N %d" % len(seen))
PY
)

while IFS= read -r line; do
	case "$line" in
	"V "*)
		echo "purity: ${line#V }"
		violations=$((violations + 1))
		;;
	"N "*)
		files_checked=${line#N }
		;;
	esac
done <<<"$source_report"

# --- 2. Undefined symbols of the compiled libraries -------------------------

# libc functions that neither allocate, block, nor read the world.
declare -A allowed_symbols=()
for sym in memcpy memset memmove memcmp memchr strlen strnlen strcmp strncmp \
	__stack_chk_fail __stack_chk_guard _GLOBAL_OFFSET_TABLE_; do
	allowed_symbols[$sym]=1
done
# Instrumentation (sanitizers, coverage) and compiler runtime helpers
# (128-bit division, popcount without -mpopcnt, ...).
allowed_symbol_re='^(__asan_|__ubsan_|__sanitizer|__msan_|__gcov_|__llvm_gcov|__llvm_profile)'
# The project's own namespaces. A pure library may refer to one before the
# file defining it exists; linking the simulator, which links only pure
# libraries, catches a reference into impure code.
allowed_symbol_re+='|^(px|bpx|ctl)_'
allowed_symbol_re+='|^__(u?(div|mod|mul)|popcount|clz|ctz|ffs|parity|bswap|mulo|ashl|ashr|lshr|neg|u?cmp)[a-z]*[0-9]$'

for lib in "${libs[@]}"; do
	if [[ ! -f "$lib" ]]; then
		echo "purity: ${lib#"$build_root"/}: missing (build it first)" >&2
		exit 2
	fi
done

# What the pure libraries define they may use among themselves.
declare -A defined=()
if ! defined_list=$(nm --defined-only --extern-only "${libs[@]}" 2>&1); then
	echo "purity: nm failed: $defined_list" >&2
	exit 2
fi
while read -r _ _ sym; do
	[[ -n "$sym" ]] && defined[$sym]=1
done <<<"$defined_list"

for lib in "${libs[@]}"; do
	if ! undefined_list=$(nm -u "$lib" 2>&1); then
		echo "purity: nm -u ${lib#"$build_root"/} failed: $undefined_list" >&2
		exit 2
	fi
	member=""
	while IFS= read -r line; do
		[[ -z "$line" ]] && continue
		if [[ "$line" == *: ]]; then
			member=${line%:}
			continue
		fi
		sym=${line##* }
		sym=${sym%%@*}
		[[ -n "${allowed_symbols[$sym]:-}" ]] && continue
		[[ -n "${defined[$sym]:-}" ]] && continue
		[[ "$sym" =~ $allowed_symbol_re ]] && continue
		echo "purity: ${lib#"$build_root"/}(${member##*/}): undefined" \
			"symbol $sym is outside the allowlist"
		violations=$((violations + 1))
	done <<<"$undefined_list"
done

if [[ $violations -ne 0 ]]; then
	echo "purity: $files_checked files checked, $violations violations"
	exit 1
fi
echo "purity: $files_checked files checked, 0 violations"
