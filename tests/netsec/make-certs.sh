#!/bin/bash
# make-certs.sh DIR: test certificates with certtool (gnutls-bin), in QEMU's
# tls-creds-x509 directory layout, the same way docs/remote-reader.md
# tells a user to make them.
#
#   DIR/server/            ca-cert.pem server-cert.pem server-key.pem
#   DIR/client/            ca-cert.pem client-cert.pem client-key.pem
#   DIR/client-otherca/    a client certificate from another CA
#   DIR/client-expired/    a client certificate that expired in 2021
#   DIR/server-otherca/    a server certificate from another CA
#   DIR/server-expired/    a server certificate that expired in 2021
#   DIR/client-nocert/     ca-cert.pem only (a client without a certificate)
#
# Server certificates name localhost and 127.0.0.1: QEMU and GLib check the
# name the client connected to.
set -euo pipefail
out=${1:?usage: make-certs.sh DIR}
mkdir -p "$out/.work"
w=$out/.work
cd "$w"

key() { certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$1" 2>/dev/null; }

ca() { # NAME
	key "$1-key.pem"
	printf 'cn = ccid-emu test CA %s\nca\ncert_signing_key\nexpiration_days = 30\n' "$1" >"$1.info"
	certtool --generate-self-signed --load-privkey "$1-key.pem" \
		--template "$1.info" --outfile "$1-cert.pem" 2>/dev/null
}

leaf() { # NAME CA ROLE(server|client) EXPIRED(0|1)
	local name=$1 ca=$2 role=$3 expired=$4
	key "$name-key.pem"
	{
		echo "organization = ccid-emu tests"
		if [ "$role" = server ]; then
			echo "cn = localhost"
			echo "dns_name = localhost"
			echo "ip_address = 127.0.0.1"
			echo "ip_address = ::1"
			echo "tls_www_server"
		else
			echo "cn = $name"
			echo "tls_www_client"
		fi
		echo "encryption_key"
		echo "signing_key"
		if [ "$expired" = 1 ]; then
			echo 'activation_date = "2020-01-01 00:00:00 UTC"'
			echo 'expiration_date = "2021-01-01 00:00:00 UTC"'
		else
			echo "expiration_days = 30"
		fi
	} >"$name.info"
	certtool --generate-certificate --load-privkey "$name-key.pem" \
		--load-ca-certificate "$ca-cert.pem" --load-ca-privkey "$ca-key.pem" \
		--template "$name.info" --outfile "$name-cert.pem" 2>/dev/null
}

dir() { # DIR CA ROLE LEAF
	mkdir -p "$out/$1"
	chmod 700 "$out/$1"
	cp "ca-cert.pem" "$out/$1/ca-cert.pem"     # always the CA that checks the peer
	if [ -n "${4:-}" ]; then
		cp "$4-cert.pem" "$out/$1/$3-cert.pem"
		cp "$4-key.pem" "$out/$1/$3-key.pem"
	fi
}

ca ca
ca otherca
leaf server ca server 0
leaf client ca client 0
leaf client-otherca otherca client 0
leaf client-expired ca client 1
leaf server-otherca otherca server 0
leaf server-expired ca server 1
dir server ca server server
dir client ca client client
dir client-otherca ca client client-otherca
dir client-expired ca client client-expired
dir server-otherca ca server server-otherca
dir server-expired ca server server-expired
dir client-nocert ca client ""
