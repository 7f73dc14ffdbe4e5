#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The shell twin of nss_fixture.c, for scripts (the guest test): a private
# softhsm2 configuration with removable slots (libcacard mirrors only
# those), one token holding an RSA-2048 key and its self-signed
# certificate, and an NSS database that loads the PKCS#11 module.
#
# Usage: make-softhsm-nssdb.sh DIR [MODULE]
#   DIR is created and must be empty or missing.  MODULE is the PKCS#11
#   library the NSS database loads (default: softhsm2's own); the token is
#   always made with softhsm2.
# Writes:
#   DIR/softhsm2.conf   export SOFTHSM2_CONF=DIR/softhsm2.conf before using it
#   DIR/tokens/         softhsm2's token store
#   DIR/hwdb/           the NSS database (sql:), empty password
#   DIR/cert.der        the token's certificate (id 01, label "cert")
#   DIR/key.pem         its private key (test only)
#   DIR/env             TOKEN=, PIN=, SO_PIN=, MODULE=, SOFTHSM= (sh syntax)
# Exit status: 0 made; 77 a tool is missing (softhsm2, opensc's pkcs11-tool,
# libnss3-tools, openssl); 1 a tool failed (its output is printed).
set -euo pipefail
export LC_ALL=C

TOKEN=${NSS_TEST_TOKEN:-ccid-nss-test}
PIN=123456
SO_PIN=12345678

die() { printf 'make-softhsm-nssdb: error: %s\n' "$*" >&2; exit 1; }
skip() { printf 'make-softhsm-nssdb: %s: skipped\n' "$*" >&2; exit 77; }

(($# >= 1 && $# <= 2)) || die "usage: make-softhsm-nssdb.sh DIR [MODULE]"
DIR=$1
SOFTHSM=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[[ -e $m ]] && SOFTHSM=$m && break
done
[[ -n $SOFTHSM ]] || skip "no libsofthsm2.so (package softhsm2)"
MODULE=${2:-$SOFTHSM}
[[ -e $MODULE ]] || die "no PKCS#11 module $MODULE"
for tool in softhsm2-util pkcs11-tool modutil certutil openssl; do
	command -v $tool >/dev/null || skip "$tool not found (needs softhsm2, opensc, libnss3-tools, openssl)"
done
if [[ -e $DIR ]] && [[ -n $(ls -A "$DIR") ]]; then
	die "$DIR is not empty"
fi
mkdir -p "$DIR/tokens" "$DIR/hwdb"
DIR=$(cd "$DIR" && pwd)

# run CMD...: quiet unless it fails.
run() {
	local out
	out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; die "$1 failed"; }
}

cat >"$DIR/softhsm2.conf" <<EOF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = true
EOF
export SOFTHSM2_CONF=$DIR/softhsm2.conf

run softhsm2-util --init-token --free --label "$TOKEN" --pin "$PIN" --so-pin "$SO_PIN"
run openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
	-subj "/CN=ccid-emu nss guest test/O=ccid-emu" -days 30
run openssl pkcs8 -topk8 -nocrypt -in "$DIR/key.pem" -out "$DIR/key8.pem"
run openssl x509 -in "$DIR/cert.pem" -outform der -out "$DIR/cert.der"
run softhsm2-util --import "$DIR/key8.pem" --token "$TOKEN" --label key --id 01 --pin "$PIN"
run pkcs11-tool --module "$SOFTHSM" --token-label "$TOKEN" --login --pin "$PIN" \
	--write-object "$DIR/cert.der" --type cert --id 01 --label cert
run certutil -N -d "sql:$DIR/hwdb" --empty-password
run modutil -dbdir "sql:$DIR/hwdb" -add softhsm -libfile "$MODULE" -force
rm -f "$DIR/key8.pem"

cat >"$DIR/env" <<EOF
TOKEN='$TOKEN'
PIN=$PIN
SO_PIN=$SO_PIN
MODULE='$MODULE'
SOFTHSM='$SOFTHSM'
EOF
