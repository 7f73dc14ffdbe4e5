# shellcheck shell=bash
# Helpers for ./bootstrap: logging, root escalation, Debian packages, meson
# build directories.  Sourced, never run.  Expects the caller to have set
# `set -euo pipefail` and cd'd to the source root.  The caller may set,
# after sourcing:
#   DRY_RUN    1: print the commands that need root instead of running them
#   JOBS_ARGS  array of extra `meson compile` arguments (e.g. -j 2)

DRY_RUN=0
JOBS_ARGS=()

log() { printf 'bootstrap: %s\n' "$*"; }
warn() { printf 'bootstrap: warning: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# A command as it would be typed, for the log: words quoted only when
# needed (printf %q alone also escapes harmless commas).
shell_words() {
	local word plain='^[A-Za-z0-9_./:=,+@%-]+$' out=''
	for word in "$@"; do
		[[ $word =~ $plain ]] || printf -v word '%q' "$word"
		out+=" $word"
	done
	printf '%s' "${out# }"
}

# Echo a command, then run it.  Used for every step a user may want to
# repeat by hand.
run() {
	printf '+ %s\n' "$(shell_words "$@")"
	"$@"
}

# Run a command as root: directly when we are root, through sudo
# otherwise.  sudo is looked up only here, so a non-root user with every
# package present never needs it.  `env` carries variables through sudo
# whatever its env_reset policy says.
priv() {
	local -a cmd=("$@")
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "need root for '$*': run as root, or install sudo"
		cmd=(sudo "${cmd[@]}")
	fi
	if ((DRY_RUN)); then
		log "dry run, would run: $(shell_words "${cmd[@]}")"
		return 0
	fi
	run "${cmd[@]}"
}

# --- Debian packages ---------------------------------------------------------

# Package names of a deps list (one a line, '#' comments) into DEPS.
deps_read() {
	local file=$1 line
	DEPS=()
	[[ -r $file ]] || die "package list $file not found"
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%%#*}
		line=${line//[[:space:]]/}
		[[ -n $line ]] && DEPS+=("$line")
	done <"$file"
	((${#DEPS[@]})) || die "package list $file names no package"
}

# Packages of DEPS not installed (dpkg status not "installed") into MISSING.
deps_missing() {
	local -A installed=()
	local name abbrev pkg
	MISSING=()
	# One dpkg-query for all; it exits 1 when any name is unknown to dpkg,
	# which is just "missing" here.
	while IFS=$'\t' read -r name abbrev; do
		# db:Status-Abbrev is want/current/error; current 'i' = installed.
		[[ ${abbrev:1:1} == i ]] && installed[$name]=1
	done < <(dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\n' \
		"${DEPS[@]}" 2>/dev/null || true)
	for pkg in "${DEPS[@]}"; do
		[[ -n ${installed[${pkg%%:*}]:-} ]] || MISSING+=("$pkg")
	done
}

# Install what is missing of the list in $1.  apt-get update runs only
# when something is missing, so a machine that has everything is not
# touched (and needs neither root nor network).
deps_ensure() {
	local file=$1
	local -a apt_opts=(-o DPkg::Lock::Timeout=600)
	if ! command -v dpkg-query >/dev/null 2>&1 ||
		! command -v apt-get >/dev/null 2>&1; then
		die "dpkg/apt-get not found: this script supports Debian 12; install the packages of $file by hand"
	fi
	if [[ -r /etc/os-release ]] && ! grep -qx 'VERSION_ID="12"' /etc/os-release; then
		warn "not Debian 12; the package names of $file may not fit"
	fi
	deps_read "$file"
	deps_missing
	if ((${#MISSING[@]} == 0)); then
		log "all ${#DEPS[@]} packages of $file are installed"
		return 0
	fi
	log "missing packages: ${MISSING[*]}"
	priv env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update ||
		return
	priv env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
		install -y --no-install-recommends "${MISSING[@]}" || return
	((DRY_RUN)) && return 0
	deps_missing
	((${#MISSING[@]} == 0)) || die "still missing after apt-get install: ${MISSING[*]}"
}

# --- meson build directories -------------------------------------------------

# Whether build directory $1 already has every option of $2... (-Dname=value).
# Checked first so that an unchanged directory is not regenerated.
meson_options_match() {
	local dir=$1
	shift
	meson introspect --buildoptions "$dir" 2>/dev/null |
		python3 -c 'import json, sys
def norm(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)
have = {o["name"]: norm(o["value"]) for o in json.load(sys.stdin)}
for arg in sys.argv[1:]:
    name, _, value = arg[2:].partition("=")
    if have.get(name) != value:
        sys.exit(1)' "$@"
}

# Configure (once) and compile build directory $1 with setup options $2...
# (each -Dname=value).  An existing directory is reused; options it lacks
# are applied with `meson configure`, and a directory meson cannot
# reconfigure is set up anew.  Returns non-zero on failure (callers count
# it; do not rely on set -e, which bash ignores inside functions called
# from `if`).
meson_build() {
	local dir=$1
	shift
	if [[ -f $dir/meson-private/coredata.dat ]]; then
		if ! meson_options_match "$dir" "$@" &&
			! run meson configure "$dir" "$@"; then
			warn "$dir could not be reconfigured; setting it up anew"
			run meson setup --wipe "$dir" "$@" || return
		fi
	else
		run meson setup "$dir" "$@" || return
	fi
	run meson compile -C "$dir" "${JOBS_ARGS[@]}"
}

# Value of meson option $2 (e.g. prefix, bindir) of build directory $1.
meson_option() {
	meson introspect --buildoptions "$1" |
		python3 -c 'import json, sys
want = sys.argv[1]
for opt in json.load(sys.stdin):
    if opt["name"] == want:
        print(opt["value"])' "$2"
}
