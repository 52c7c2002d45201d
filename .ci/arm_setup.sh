#!/bin/bash
# .ci/arm_setup.sh [CACHE]   (CACHE defaults to /root/.cache/cmlite-arm)
#
# Run by the ARM check (tests/arm_check.py, from tests/test_arm.py in the suite) and by hand. Measured here: 52-62 s
# the first time (807 MB in CACHE), 6.5 s when everything is cached.
#
# Builds, once, everything needed to run cmlite's torch-free runtime on aarch64 under qemu user-mode emulation
# on an x86_64 Debian 12 host (no binfmt registration, no system change: apt is only used to download .debs
# through a private state folder inside CACHE):
#   CACHE/tools/debootstrap   debootstrap, from `apt-get download` + `dpkg-deb -x`
#   CACHE/root                arm64 Debian 12 (bookworm) minbase + python3 (debootstrap --foreign, then every
#                             downloaded .deb unpacked with dpkg-deb -x; no second stage needed)
#   CACHE/qemu                qemu-user from bookworm-backports (qemu 10; Debian 12's 7.2 crashes in ORT/LiteRT);
#                             usr/bin/qemu-aarch64 is statically linked
#   CACHE/wheel, CACHE/app    the cmlite wheel built from a copy of $CMLITE_SRC (default this repository; never
#                             written to), unpacked into CACHE/app (rebuilt only when the sources change)
#   CACHE/site                the aarch64 cp311 wheels of cmlite's dependencies with extras onnx,tflite,openvino
#                             (pip --target --platform ...; pinned to the x86 venv's versions unless
#                             CMLITE_ARM_PIN=0; reinstalled only when the requirements/pins change)
#   CACHE/bin/armpy           wrapper: `armpy -m cmlite.apps.cli predict ...` runs python3.11 under qemu-aarch64
#
# Idempotent: each step leaves a stamp and is skipped when its inputs have not changed.
# Environment: CMLITE_SRC, CMLITE_VENV_PY (x86 python with pip and setuptools>=77, default $CMLITE_SRC/.venv),
#              CMLITE_ARM_EXTRAS (default onnx,tflite,openvino), CMLITE_ARM_PIN (1), MIRROR (default: the
#              bookworm mirror named in /etc/apt/sources.list{,.d/*}), NICE (default 19).
set -euo pipefail

CACHE=$(mkdir -p "${1:-/root/.cache/cmlite-arm}" && cd "${1:-/root/.cache/cmlite-arm}" && pwd)
SRC=${CMLITE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
VPY=${CMLITE_VENV_PY:-$SRC/.venv/bin/python}
EXTRAS=${CMLITE_ARM_EXTRAS:-onnx,tflite,openvino}
PIN=${CMLITE_ARM_PIN:-1}
NICE="nice -n ${NICE:-19}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
T_ALL=$(date +%s.%N)

say() { printf '[setup_arm] %s\n' "$*"; }
step_begin() { STEP=$1; T0=$(date +%s.%N); say "== $STEP: $2"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step_end() { say "   $STEP: $1 in $(since "$T0") s"; }
hash_of() { sha256sum | cut -c1-16; }
APT_PRIV=(-o "Dir::Etc::SourceList=$CACHE/apt/sources.list" -o "Dir::Etc::SourceParts=$CACHE/apt/sources.list.d"
          -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::Cache=$CACHE/apt/cache" -o "APT::Sandbox::User=root")

# The Debian mirror: the first URI serving suite "bookworm" in the host's apt sources (deb822 or one-line).
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(python3 - <<'EOF'
import glob, re
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")
                                           + glob.glob("/etc/apt/sources.list.d/*.sources"))
for f in files:
    try:
        text = open(f).read()
    except OSError:
        continue
    if f.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            kv = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in kv.get("Types", "").split() and "bookworm" in kv.get("Suites", "").split() \
                    and kv.get("Enabled", "yes") != "no":
                print(kv["URIs"].split()[0]); raise SystemExit
    else:
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m:
                print(m.group(1)); raise SystemExit
EOF
)
fi
[ -n "$MIRROR" ] || { echo "no bookworm mirror found in apt sources; set MIRROR=" >&2; exit 1; }
say "cache $CACHE, mirror $MIRROR, source $SRC"

# ---- 1. private apt state (bookworm + bookworm-backports), for `apt-get download` without touching /etc/apt
step_begin apt "private apt lists in $CACHE/apt"
mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial" "$CACHE/apt/sources.list.d" "$CACHE/debs"
LIST="deb [signed-by=$KEYRING] $MIRROR bookworm main
deb [signed-by=$KEYRING] $MIRROR bookworm-backports main"
if [ "$(cat "$CACHE/apt/sources.list" 2>/dev/null)" != "$LIST" ] || ! ls "$CACHE"/apt/lists/*backports*Packages* >/dev/null 2>&1; then
    echo "$LIST" > "$CACHE/apt/sources.list"
    apt-get "${APT_PRIV[@]}" -q update
    step_end "updated"
else
    step_end "cached"
fi

# ---- 2. debootstrap (host tool, unpacked, not installed)
step_begin debootstrap "debootstrap unpacked in $CACHE/tools/debootstrap"
DBS=$CACHE/tools/debootstrap
if [ ! -x "$DBS/usr/sbin/debootstrap" ]; then
    (cd "$CACHE/debs" && apt-get "${APT_PRIV[@]}" -q download debootstrap/bookworm)
    rm -rf "$DBS" && mkdir -p "$DBS" && dpkg-deb -x "$(ls -t "$CACHE"/debs/debootstrap_*.deb | head -1)" "$DBS"
    step_end "downloaded"
else
    step_end "cached"
fi

# ---- 3. the arm64 root
step_begin root "arm64 bookworm minbase + python3 in $CACHE/root"
ROOT=$CACHE/root
if [ ! -f "$ROOT/.cmlite-root-ok" ]; then
    rm -rf "$ROOT.tmp" "$ROOT"
    DEBOOTSTRAP_DIR=$DBS/usr/share/debootstrap $NICE "$DBS/usr/sbin/debootstrap" --foreign --arch=arm64 \
        --variant=minbase --include=python3 --keyring=$KEYRING bookworm "$ROOT.tmp" "$MIRROR"
    n=0
    for deb in "$ROOT.tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT.tmp"; n=$((n+1)); done
    say "   unpacked $n .debs"
    # Paths the guest python looks at that the root lacks would fall through (qemu -L) to the host's x86 ones.
    mkdir -p "$ROOT.tmp/usr/local/lib/python3.11/dist-packages"
    test -x "$ROOT.tmp/usr/bin/python3.11" && test -e "$ROOT.tmp/lib/ld-linux-aarch64.so.1"
    touch "$ROOT.tmp/.cmlite-root-ok" && mv "$ROOT.tmp" "$ROOT"
    step_end "built"
else
    step_end "cached"
fi

# ---- 4. qemu-user from bookworm-backports
step_begin qemu "qemu-user (bookworm-backports) unpacked in $CACHE/qemu"
QEMU=$CACHE/qemu/usr/bin/qemu-aarch64
if [ ! -x "$QEMU" ]; then
    (cd "$CACHE/debs" && apt-get "${APT_PRIV[@]}" -q download qemu-user/bookworm-backports)
    rm -rf "$CACHE/qemu" "$CACHE/qemu.tmp" && mkdir -p "$CACHE/qemu/usr/bin"
    dpkg-deb -x "$(ls -t "$CACHE"/debs/qemu-user_*.deb | head -1)" "$CACHE/qemu.tmp"
    # keep only the aarch64 emulator (the package has every target's: 364 MB) and its copyright
    mv "$CACHE/qemu.tmp/usr/bin/qemu-aarch64" "$CACHE/qemu/usr/bin/"
    mv "$CACHE/qemu.tmp/usr/share/doc/qemu-user/copyright" "$CACHE/qemu/" 2>/dev/null || true
    rm -rf "$CACHE/qemu.tmp"
    step_end "downloaded"
else
    step_end "cached"
fi
say "   $("$QEMU" --version | head -1)"

# ---- 5. the cmlite wheel, from a copy of the sources (pip writes build/ and *.egg-info into the tree it builds)
step_begin wheel "cmlite wheel from $SRC"
SRC_FILES=$(cd "$SRC" && find pyproject.toml README.md lite runtimes converters calibration apps \
    -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
SRC_HASH=$(cd "$SRC" && echo "$SRC_FILES" | tr '\n' '\0' | xargs -0 sha256sum | hash_of)
if [ "$(cat "$CACHE/app/.cmlite-src-hash" 2>/dev/null)" != "$SRC_HASH" ]; then
    rm -rf "$CACHE/build" "$CACHE/wheel.tmp" && mkdir -p "$CACHE/build/src"
    (cd "$SRC" && echo "$SRC_FILES" | tr '\n' '\0' | xargs -0 tar -c) | tar -x -C "$CACHE/build/src"
    $NICE "$VPY" -m pip wheel -q --no-deps --no-build-isolation -w "$CACHE/wheel.tmp" "$CACHE/build/src"
    rm -rf "$CACHE/wheel" "$CACHE/app.tmp" && mv "$CACHE/wheel.tmp" "$CACHE/wheel"
    WHL=$(ls "$CACHE"/wheel/cmlite-*.whl)
    "$VPY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$WHL" "$CACHE/app.tmp"
    echo "$SRC_HASH" > "$CACHE/app.tmp/.cmlite-src-hash"
    rm -rf "$CACHE/app" "$CACHE/build" && mv "$CACHE/app.tmp" "$CACHE/app"
    step_end "built $(basename "$WHL") (sources $SRC_HASH)"
else
    step_end "cached (sources $SRC_HASH)"
fi
WHL=$(ls "$CACHE"/wheel/cmlite-*.whl)

# ---- 6. aarch64 site-packages of the dependencies
step_begin site "aarch64 cp311 dependencies [$EXTRAS] in $CACHE/site"
PLATS=(--platform manylinux2014_aarch64)
for m in $(seq 17 36); do PLATS+=(--platform "manylinux_2_${m}_aarch64"); done
REQS=$("$VPY" - "$WHL" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
print("\n".join(l for l in z.read(meta).decode().splitlines() if l.startswith("Requires-Dist:")))
EOF
)
CONSTRAINTS=""
if [ "$PIN" = 1 ]; then
    CONSTRAINTS=$("$VPY" -m pip freeze --exclude-editable 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+==' || true)
fi
# The site is rebuilt when the requirements, extras or platforms change, or when the x86 venv's version of a
# package the site holds changes (other venv changes are ignored).
norm() { tr 'A-Z_.' 'a-z--'; }
BASE_KEY=$(printf '%s\n' "$REQS" "$EXTRAS" "PIN=$PIN" "${PLATS[*]}" | hash_of)
site_pins() {  # the constraint lines of the packages installed in site ($1)
    local names
    names=$(ls -d "$1"/*.dist-info 2>/dev/null | sed 's#.*/##; s#-[^-]*\.dist-info$##' | norm | sort -u)
    echo "$CONSTRAINTS" | awk -F'==' 'NR==FNR { want[$1]; next } { n = tolower($1); gsub(/[_.]/, "-", n); if (n in want) print }' \
        <(echo "$names") - | sort
}
CUR_KEY=""
[ -d "$CACHE/site" ] && CUR_KEY="$BASE_KEY $(site_pins "$CACHE/site" | hash_of)"
if [ -z "$CUR_KEY" ] || [ "$(cat "$CACHE/site/.cmlite-site-key" 2>/dev/null)" != "$CUR_KEY" ]; then
    rm -rf "$CACHE/site.tmp" && mkdir -p "$CACHE/site.tmp"
    echo "$CONSTRAINTS" > "$CACHE/constraints.txt"
    PIPARGS=(install -q --target "$CACHE/site.tmp" "${PLATS[@]}" --python-version 3.11 --implementation cp
             --abi cp311 --only-binary=:all:)
    if ! $NICE "$VPY" -m pip "${PIPARGS[@]}" -c "$CACHE/constraints.txt" "$WHL[$EXTRAS]"; then
        [ "$PIN" = 1 ] || exit 1
        say "   !! the x86 venv's versions do not all exist for aarch64: installing unpinned (CMLITE_ARM_PIN=0)"
        rm -rf "$CACHE/site.tmp" && mkdir -p "$CACHE/site.tmp"
        $NICE "$VPY" -m pip "${PIPARGS[@]}" "$WHL[$EXTRAS]"
    fi
    # cmlite itself lives in CACHE/app (a namespace package: a stale copy here would merge with it)
    rm -rf "$CACHE/site.tmp/cmlite" "$CACHE"/site.tmp/cmlite-*.dist-info
    echo "$BASE_KEY $(site_pins "$CACHE/site.tmp" | hash_of)" > "$CACHE/site.tmp/.cmlite-site-key"
    site_pins "$CACHE/site.tmp" > "$CACHE/site.tmp/.cmlite-site-pins"
    rm -rf "$CACHE/site" && mv "$CACHE/site.tmp" "$CACHE/site"
    step_end "installed ($(du -sh "$CACHE/site" | cut -f1); $(wc -l < "$CACHE/site/.cmlite-site-pins") packages pinned to the venv's versions)"
else
    step_end "cached"
fi

# ---- 7. the wrapper
mkdir -p "$CACHE/bin"
cat > "$CACHE/bin/armpy" <<'EOF'
#!/bin/sh
# python3.11 of the arm64 root under qemu-aarch64 user mode, with cmlite (app) and its aarch64 deps (site).
C=$(dirname "$(dirname "$(readlink -f "$0")")")
export QEMU_CPU="${QEMU_CPU:-cortex-a76}" PYTHONNOUSERSITE=1
export PYTHONPATH="$C/app:$C/site${PYTHONPATH:+:$PYTHONPATH}"
exec "$C/qemu/usr/bin/qemu-aarch64" -L "$C/root" "$C/root/usr/bin/python3.11" "$@"
EOF
chmod +x "$CACHE/bin/armpy"

say "== sizes: $(cd "$CACHE" && du -sh root qemu site app wheel debs apt 2>/dev/null | awk '{printf "%s %s, ", $2, $1}')total $(du -sh "$CACHE" | cut -f1)"
say "== smoke test under qemu"
T0=$(date +%s.%N); STEP=smoke
$NICE "$CACHE/bin/armpy" -c "import platform, sys, numpy, cv2; print(platform.machine(), sys.version.split()[0], 'numpy', numpy.__version__, 'cv2', cv2.__version__)"
step_end "ok"
say "done in $(since "$T_ALL") s; run: $CACHE/bin/armpy -m cmlite.apps.cli ..."
