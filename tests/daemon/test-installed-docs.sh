#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The man page and bash completion that meson installs know every
# command `ccid-agent help` lists; the man page formats without groff
# warnings; the completion file is valid bash and completes commands,
# entry ids and VM names (from a stand-in `ccid-agent` on PATH that prints
# what the daemon's list and vms print).
#
# Usage: test-installed-docs.sh AGENT
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$(cd "$HERE/../../host-agent/data" && pwd)
AGENT=${1:?usage: test-installed-docs.sh PATH-TO-ccid-agent}
FAILS=0
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

mapfile -t CMDS < <("$AGENT" help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
((${#CMDS[@]} >= 10)) || fail "ccid-agent help lists only: ${CMDS[*]}"

warn=$(groff -ww -man -z "$DATA/ccid-agent.1" 2>&1) || fail "groff: $warn"
[[ -z $warn ]] || fail "groff warnings: $warn"
for c in "${CMDS[@]}"; do
	grep -q "^\.B $c\b" "$DATA/ccid-agent.1" || fail "the man page lacks command '$c'"
done

bash -n "$DATA/ccid-agent.bash-completion" || fail "the completion file is not valid bash"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A stand-in for the completion's own calls to ccid-agent list / vms.
cat >"$WORK/ccid-agent" <<'STUB'
#!/bin/sh
case $1 in
list) printf 'ID STATE\nvirtual card-present\nlab no-card\n' ;;
vms) printf 'NAME STATE\nvm1 running\n' ;;
esac
STUB
chmod +x "$WORK/ccid-agent"
complete_words() {    # complete_words WORD...: what completing the last gives
	PATH=$WORK:$PATH bash -c '
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_ccid_agent
		printf "%s\n" "${COMPREPLY[@]}"' _ "$DATA/ccid-agent.bash-completion" "$@"
}
got=$(complete_words ccid-agent "" | sort | tr '\n' ' ')
for c in "${CMDS[@]}"; do
	[[ " $got" == *" $c "* ]] || fail "completion lacks command '$c' (got: $got)"
done
[[ $(complete_words ccid-agent attach "" | tr '\n' ' ') == "virtual lab " ]] ||
	fail "attach ENTRY: $(complete_words ccid-agent attach "" | tr '\n' ' ')"
[[ $(complete_words ccid-agent attach virtual v | tr '\n' ' ') == "vm1 " ]] ||
	fail "attach ENTRY VM: $(complete_words ccid-agent attach virtual v | tr '\n' ' ')"
[[ $(complete_words ccid-agent list --j | tr '\n' ' ') == "--json " ]] ||
	fail "list --json: $(complete_words ccid-agent list --j | tr '\n' ' ')"

echo "test-installed-docs: ${#CMDS[@]} commands, $FAILS failed"
((FAILS == 0))
