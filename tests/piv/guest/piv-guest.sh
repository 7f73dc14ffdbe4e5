# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# Guest script of tests/piv/test-piv-guest.sh: a virtual PIV card
# (`ccid-agent serve --card piv:DIR`) behind the emulated reader, driven
# by the guest's stock pcscd, libccid, yubico-piv-tool and OpenSC.  Two
# phases, one boot each (the host signs the certificate request in
# between and restarts the agent):
#
#   PHASE=enroll  what a PKI portal does: change the PIN and the PUK from
#                 their defaults, set a new management key, generate a key
#                 in 9A, make a certificate request signed on the card
#                 (OpenSSL's pkcs11 engine on OpenSC; sent to the host:
#                 DATA csr), write CHUID and CCC
#   PHASE=use     import the host-signed certificate (/ccid-test/cert.pem);
#                 yubico-piv-tool -a status and OpenSC's pkcs15-tool show
#                 it; pkcs11-tool signs /ccid-test/challenge.bin with the
#                 new PIN (DATA sig, verified on the host); a wrong PIN is
#                 refused; three wrong PINs block it and the PUK unblocks;
#                 pam_pkcs11 (via pamtester) logs the mapped user in for
#                 login and su with the PIN, and refuses a wrong PIN
#
# From the host (/ccid-test/params): PHASE, ATR (hex prefix), ALG (RSA2048
# or ECCP256), NEW_PIN, NEW_PUK, NEW_MGM, CN.

T=ccid-guest-tool
. /ccid-test/params

# The reader is found by its CCID interface class (0B), not by a USB ID.
pg_ccid_dev() {
	for pg_i in /sys/bus/usb/devices/*:*; do
		[ "$(cat "$pg_i/bInterfaceClass" 2>/dev/null)" = 0b ] || continue
		pg_n=$(basename "$pg_i")
		echo "/sys/bus/usb/devices/${pg_n%%:*}"
		return 0
	done
	return 1
}

if wait_until 30 pg_ccid_dev; then
	PG_DEV=$(pg_ccid_dev)
	PG_VID=$(cat "$PG_DEV/idVendor")
	PG_PID=$(cat "$PG_DEV/idProduct")
	metric usb_enumerated_ms "$(uptime_ms)" ms
	pass usb-enumerated "CCID device $PG_VID:$PG_PID"
else
	fail usb-enumerated "no USB device with a CCID interface after 30 s"
	exit 1
fi
usb_describe "$PG_VID" "$PG_PID"
ccid_plist_has "$PG_VID" "$PG_PID" || ccid_plist_add "$PG_VID" "$PG_PID" "ccid-emu Virtual CCID Reader"
pcscd_start || { fail pcscd-start "pcscd did not start"; exit 1; }
if check_grep atr "^atr=$ATR" $T -t 20000 find-reader "$ATR"; then
	metric boot_to_atr_ms "$(uptime_ms)" ms
else
	pcscd_log
	exit 1
fi
PG_READER=$(sed -n 's/^reader=//p' /tmp/atr.log)
note "reader '$PG_READER'"

Y() { yubico-piv-tool -r "$PG_READER" "$@"; }

check_grep ykpiv-version 'Application version 5\.4\.3' Y -a version

if [ "$PHASE" = enroll ]; then
	check change-pin Y -a change-pin -P 123456 -N "$NEW_PIN"
	check change-puk Y -a change-puk -P 12345678 -N "$NEW_PUK"
	check set-mgm-key Y -a set-mgm-key -n "$NEW_MGM"
	# The old key is refused now.
	if Y -a set-chuid >/tmp/old-key.log 2>&1; then
		fail old-mgm-key-refused "set-chuid with the default management key worked"
	else
		pass old-mgm-key-refused "$(tail -n 1 /tmp/old-key.log)"
	fi
	pg_t0=$(uptime_ms)
	if check generate Y --key="$NEW_MGM" -s 9a -a generate -A "$ALG" -o /tmp/pub.pem; then
		metric keygen_ms $(( $(uptime_ms) - pg_t0 )) ms
	fi
	# The certificate request, signed on the card through OpenSC's
	# PKCS#11 module and OpenSSL's pkcs11 engine.  OpenSC only shows a key
	# without a certificate when PIV_9A_KEY names its public key (DER).
	# (yubico-piv-tool 2.2.0's request-certificate cannot sign with
	# OpenSSL 3: upstream issue #388.)
	cat >/tmp/engine.cnf <<-EOC
	openssl_conf = openssl_init
	[openssl_init]
	engines = engine_section
	[engine_section]
	pkcs11 = pkcs11_section
	[pkcs11_section]
	engine_id = pkcs11
	dynamic_path = /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so
	MODULE_PATH = /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
	init = 0
	[req]
	distinguished_name = req_dn
	[req_dn]
	EOC
	openssl pkey -pubin -in /tmp/pub.pem -outform DER -out /tmp/pub.der
	pg_t0=$(uptime_ms)
	if check request-certificate env OPENSSL_CONF=/tmp/engine.cnf PIV_9A_KEY=/tmp/pub.der \
		openssl req -new -engine pkcs11 -keyform engine \
		-key "pkcs11:id=%01;type=private;pin-value=$NEW_PIN" \
		-subj "/CN=$CN" -sha256 -out /tmp/csr.pem; then
		metric csr_ms $(( $(uptime_ms) - pg_t0 )) ms
		export_file csr /tmp/csr.pem
	fi
	check set-chuid Y --key="$NEW_MGM" -a set-chuid
	check set-ccc Y --key="$NEW_MGM" -a set-ccc
	check_grep status-chuid '^CHUID:' Y -a status
	exit 0
fi

# --- PHASE=use -------------------------------------------------------------------
# The agent was restarted since enrollment: the new PIN is still the PIN.
check_grep pin-persisted 'Successfully verified PIN' Y -a verify-pin -P "$NEW_PIN"
check import-certificate Y --key="$NEW_MGM" -s 9a -a import-certificate -i /ccid-test/cert.pem
check_grep status-cert "Subject DN:.*CN=$CN" Y -a status
cat /tmp/status-cert.log

check_grep pkcs15-dump "$CN" pkcs15-tool --reader "$PG_READER" --dump
check_grep pkcs11-cert "subject: .*CN=$CN" pkcs11-tool --slot-description "$PG_READER" -O

if [ "$ALG" = RSA2048 ]; then
	PG_MECH=SHA256-RSA-PKCS
	PG_FMT=
else
	PG_MECH=ECDSA-SHA256
	PG_FMT="--signature-format openssl"
fi
pg_sign() {    # pg_sign PIN OUT
	# shellcheck disable=SC2086
	pkcs11-tool --slot-description "$PG_READER" --login --pin "$1" \
		--sign --id 01 -m "$PG_MECH" $PG_FMT \
		-i /ccid-test/challenge.bin -o "$2"
}
pg_t0=$(uptime_ms)
if check pkcs11-sign pg_sign "$NEW_PIN" /tmp/sig.bin; then
	metric sign_ms $(( $(uptime_ms) - pg_t0 )) ms
	export_file sig /tmp/sig.bin
fi
if pg_sign 999999 /tmp/sig-wrong.bin >/tmp/wrong-pin.log 2>&1; then
	fail wrong-pin-refused "a signature with PIN 999999"
else
	pass wrong-pin-refused "$(grep -m 1 -i 'C_Login\|pin' /tmp/wrong-pin.log)"
fi

# Three wrong PINs in a row block it (the one above counted: 2 more);
# the PUK unblocks it.
Y -a verify-pin -P 999999 >/tmp/wrong2.log 2>&1
Y -a verify-pin -P 999999 >/tmp/wrong3.log 2>&1
cat /tmp/wrong2.log /tmp/wrong3.log
check_grep pin-blocked 'blocked' sh -c "yubico-piv-tool -r '$PG_READER' -a verify-pin -P '$NEW_PIN' 2>&1; true"
check unblock-pin Y -a unblock-pin -P "$NEW_PUK" -N "$NEW_PIN"
check_grep pin-after-unblock 'Successfully verified PIN' Y -a verify-pin -P "$NEW_PIN"
check pkcs11-sign-after-unblock pg_sign "$NEW_PIN" /tmp/sig2.bin

# --- smart-card login: pam_pkcs11 (CA-checked certificate, signature
# check with the card's key, CN mapped to a local user), driven by
# pamtester for the services login and su, PIN on stdin.
echo 'alice:x:1000:1000:PIV card user:/tmp:/bin/sh' >>/etc/passwd
echo 'alice:x:1000:' >>/etc/group
mkdir -p /etc/pam.d /etc/pam_pkcs11/cacerts /etc/pam_pkcs11/crls
cp /ccid-test/ca.pem /etc/pam_pkcs11/cacerts/ca.pem
ln -s ca.pem "/etc/pam_pkcs11/cacerts/$(openssl x509 -hash -noout -in /ccid-test/ca.pem).0"
echo "$CN -> alice" >/etc/pam_pkcs11/cn_map
cat >/etc/pam_pkcs11/pam_pkcs11.conf <<EOC
pam_pkcs11 {
  nullok = false;
  debug = false;
  use_first_pass = false;
  try_first_pass = false;
  use_authtok = false;
  card_only = true;
  wait_for_card = false;
  use_pkcs11_module = opensc;
  pkcs11_module opensc {
    module = /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so;
    description = "OpenSC PKCS#11 module";
    slot_description = "none";
    ca_dir = /etc/pam_pkcs11/cacerts;
    crl_dir = /etc/pam_pkcs11/crls;
    support_threads = false;
    cert_policy = ca,signature;
    token_type = "Smart card";
  }
  use_mappers = cn;
  mapper_search_path = /usr/lib/x86_64-linux-gnu/pam_pkcs11;
  mapper cn {
    debug = false;
    module = internal;
    ignorecase = false;
    mapfile = file:///etc/pam_pkcs11/cn_map;
  }
}
EOC
for pg_svc in login su; do
	echo 'auth required pam_pkcs11.so' >"/etc/pam.d/$pg_svc"
done
pg_pam() {    # pg_pam SERVICE PIN
	echo "$2" | pamtester -v "$1" alice authenticate
}
pg_t0=$(uptime_ms)
if check_grep pam-login 'successfully authenticated' pg_pam login "$NEW_PIN"; then
	metric login_ms $(( $(uptime_ms) - pg_t0 )) ms
fi
check_grep pam-su 'successfully authenticated' pg_pam su "$NEW_PIN"
if pg_pam login 999999 >/tmp/pam-wrong.log 2>&1; then
	fail pam-wrong-pin-refused "pamtester authenticated alice with PIN 999999"
elif grep -q 'Wrong smartcard PIN' /tmp/pam-wrong.log; then
	pass pam-wrong-pin-refused "$(grep -o 'Wrong smartcard PIN' /tmp/pam-wrong.log), $(grep -o 'Authentication failure' /tmp/pam-wrong.log)"
else
	fail pam-wrong-pin-refused "refused, but not for the PIN: $(tr '\n' ' ' </tmp/pam-wrong.log)"
fi
cat /tmp/pam-wrong.log
# Nobody else: a user the certificate does not map to.
echo 'bob:x:1001:1001::/tmp:/bin/sh' >>/etc/passwd
if echo "$NEW_PIN" | pamtester login bob authenticate >/tmp/pam-bob.log 2>&1; then
	fail pam-other-user-refused "the card logged bob in"
elif grep -q 'pamtester: ' /tmp/pam-bob.log; then
	pass pam-other-user-refused "$(grep 'pamtester: ' /tmp/pam-bob.log | tail -n 1)"
else
	fail pam-other-user-refused "pamtester failed without a PAM verdict: $(tr '\n' ' ' </tmp/pam-bob.log)"
fi
cat /tmp/pam-bob.log

[ "$(failures)" -eq 0 ] || pcscd_log
