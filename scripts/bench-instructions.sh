#!/usr/bin/env bash
# Counts the user-space instructions `datasync up` executes per synced message, under
# valgrind's callgrind: a number that moves far less than msg/s on a shared VM (which moves by
# 25% with the host). It still moves by up to 4% from run to run, because how many messages
# share a group commit, a GetMessages call or a connector batch follows timing: compare the
# means of several runs, or one component's cost in the callgrind files left under target/.
# Not part of the test suite; needs valgrind (Debian's `valgrind` package) and takes about
# two minutes.
#
# How: starts `datasync up` under callgrind in a fresh directory under target/, warms it with
# 300 messages, zeroes the counters, runs `datasync bench -n N -c 8` against it (N messages
# through the whole pipeline, then the bench's 200-message direct baseline, which the demo
# target inside `up` also serves), dumps, and divides by N + 200.
#
# RSA and SHA-256 are left out of the per-message figure (the inclusive cost of every call into
# the signer's RSA, the verifier and SHA-256): under valgrind everything runs about 100 times
# slower, so the once-per-second signatures (each function instance's, the connector's) are
# counted 100 times too often, and SHA-256 runs valgrind's non-SHA-NI code.
# Kernel time (a third of the real CPU) is not counted at all.
#
#   scripts/bench-instructions.sh [N] [BINARY]   (defaults: 500, target/release/datasync)
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-500}
bin=${2:-target/release/datasync}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
if [ "$bin" = target/release/datasync ]; then
    cargo build --release --locked >&2
fi

work=target/bench-instructions
rm -rf "$work"
mkdir -p "$work"
data=$work/data

valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$work/callgrind.out.%p" \
    "$bin" up --data-dir "$data" --listen 127.0.0.1:0 --emulator-listen 127.0.0.1:0 \
    --demo-target-listen 127.0.0.1:0 >"$work/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null || true' EXIT
for _ in $(seq 1200); do
    [ -f "$data/endpoints.json" ] && break
    kill -0 $up 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
    sleep 0.5
done
[ -f "$data/endpoints.json" ] || { echo "datasync up did not start under valgrind" >&2; exit 1; }

"$bin" bench --data-dir "$data" -n 300 -c 8 >/dev/null 2>&1
callgrind_control -z $up >/dev/null
"$bin" bench --data-dir "$data" -n "$n" -c 8 2>&1 | grep -E "^end to end" >&2 || true
callgrind_control -d $up >/dev/null
sleep 1
kill -INT $up
wait $up || true
trap - EXIT

# The dump after zeroing is the file with part number 1.
python3 - "$n" "$work"/callgrind.out.*.1 <<'PY'
import collections, re, sys

n = int(sys.argv[1]) + 200
# RSA signing and verification and SHA-256, by the inclusive cost of every call into them from
# outside them (so the helpers they call, memset among them, go too).
crypto = re.compile(
    r"^(datasync_core::oci::key::PrivateKey::sign|datasync_core::oci::signer::verify_rsa_sha256"
    r"|sha2::sha256::soft::compress|ring::rsa::|<?rsa::)"
)
own = collections.Counter()
excluded = 0
fn = cfn = None
in_call = False
for path in sys.argv[2:]:
    for line in open(path, errors="replace"):
        if line.startswith("fn="):
            fn = line[3:].strip()
        elif line.startswith("cfn="):
            cfn = line[4:].strip()
        elif line.startswith("calls="):
            in_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            if len(fields) >= 2:
                if in_call:
                    # The inclusive cost of a call, counted in the callee's own lines.
                    in_call = False
                    if crypto.search(cfn or "") and not crypto.search(fn or ""):
                        excluded += int(fields[1])
                else:
                    own[fn] += int(fields[1])
total = sum(own.values())
print(f"instructions per message, RSA and SHA-256 left out: {(total - excluded) / n / 1e3:.0f} K")
print(f"  (all: {total / n / 1e3:.0f} K per message; RSA and SHA-256: {excluded / 1e6:.0f} M in all)")
# The listing leaves out the big-number and hashing routines by name (their callers' share of
# memset and the like stays in).
arithmetic = re.compile(r"ring_core|mul4x|num_bigint|bn_|LIMBS|limbs_|elem_exp|montgomery|sha2::|sha256")
groups = collections.Counter()
for k, v in own.items():
    if arithmetic.search(k or ""):
        continue
    m = re.match(r"<*([A-Za-z_][A-Za-z0-9_]*)::", k or "")
    groups[m.group(1) if m else "(C: libc, jemalloc, SQLite)"] += v
print("  largest by crate:")
for name, v in groups.most_common(12):
    print(f"    {v / n / 1e3:6.1f} K  {name}")
PY
