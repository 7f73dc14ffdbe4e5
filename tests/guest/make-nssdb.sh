#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Creates an NSS database with three self-signed RSA certificates and their
# keys, for a CAC virtual card (QEMU's ccid-card-emulated
# backend=certificates, or libcacard behind ccid-emu).
#
# Usage: make-nssdb.sh DIR [NICK...]
#   default nicknames: id-cert signing-cert encryption-cert
# DIR is created (it must not hold a database yet); the database has an
# empty password.  Then: db=sql:DIR,cert1=id-cert,cert2=...,cert3=...
set -euo pipefail

die() { printf 'make-nssdb: error: %s\n' "$*" >&2; exit 1; }

(($# >= 1)) || die "usage: make-nssdb.sh DIR [NICK...]"
DIR=$1
shift
NICKS=("$@")
((${#NICKS[@]})) || NICKS=(id-cert signing-cert encryption-cert)
command -v certutil >/dev/null || die "certutil not found (package libnss3-tools)"
[[ -e $DIR/cert9.db ]] && die "$DIR already holds an NSS database"

mkdir -p "$DIR"
certutil -N -d "sql:$DIR" --empty-password
noise=$DIR/.noise
serial=1
for nick in "${NICKS[@]}"; do
	head -c 64 /dev/urandom >"$noise"
	certutil -S -d "sql:$DIR" -n "$nick" -s "CN=$nick,O=ccid-emu test" \
		-x -t "CT,C,C" -k rsa -g 2048 -Z SHA256 -v 120 -m "$serial" \
		-z "$noise" >/dev/null 2>&1 ||
		die "certutil could not create '$nick' in $DIR"
	serial=$((serial + 1))
done
rm -f "$noise"
certutil -L -d "sql:$DIR"
