#!/bin/sh
# openme installer: https://github.com/openme/openme
#
#   curl -fsSL https://github.com/openme/openme/releases/latest/download/install.sh | sh
#   curl -fsSL https://github.com/openme/openme/releases/latest/download/install.sh | sh -s -- --server
#
# Downloads the openme binary for this machine from a GitHub release over
# https, checks its SHA-256 against the release's SHA256SUMS and only then
# installs it, replacing an older binary in one rename, with its manual page.
# `sh install.sh --help` lists the options. Everything below is a function and `main` runs on the last line, so
# a download cut short runs nothing.

set -eu

RELEASES_URL="https://github.com/openme/openme/releases"
DEFAULT_BINDIR="/usr/local/bin"
UNIT_NAME="openme.service"
# The system user and group the service runs as (User=, Group= in the unit).
SERVICE_USER="openme"

# Set by main and the functions it calls.
VERSION=""
PREFIX=""
SERVER=0
UNINSTALL=0
ROOT=""
ASSET=""
DOWNLOADER=""
HASHER=""
BINDIR=""
BIN_SUDO=""
WORKDIR=""
STAGED=""

usage() {
	cat <<'EOF'
Usage: install.sh [options]
       curl -fsSL https://github.com/openme/openme/releases/latest/download/install.sh | sh -s -- [options]

Installs the openme binary for this machine (Linux or macOS, x86_64 or
aarch64) from a GitHub release, after checking its SHA-256 against the
release's SHA256SUMS, and its manual page (man openme). Running it again
upgrades in place.

Options:
  --version X.Y.Z  release to install (default: the latest release)
  --prefix DIR     install to DIR/bin/openme (default: /usr/local/bin/openme,
                   with sudo when needed; ~/.local/bin/openme without sudo)
  --server         also create the system user openme, install the systemd
                   unit and create /etc/openme (root:openme, mode 0750)
                   (Linux, needs root or sudo); enables but does not start it
  --uninstall      remove the binary and manual page; with --server also the unit
                   (/etc/openme and the openme user are kept)
  -h, --help       show this help

Environment:
  OPENME_VERSION       same as --version
  OPENME_DOWNLOAD_URL  base URL holding the binaries and SHA256SUMS
                       (default: the GitHub release of the chosen version);
                       https only, plain http only to 127.0.0.1, [::1] or
                       localhost (a local mirror)
  OPENME_ROOT          install under this directory instead of / (packaging
                       and tests); no user is created, nothing is enabled
                       or started
  OPENME_UNAME_S, OPENME_UNAME_M  use instead of `uname -s` / `uname -m`
EOF
}

say() {
	printf '%s\n' "$*"
}

warn() {
	printf 'openme-install: warning: %s\n' "$*" >&2
}

die() {
	printf 'openme-install: error: %s\n' "$*" >&2
	exit 1
}

usage_error() {
	printf 'openme-install: %s\nRun with --help for the options.\n' "$*" >&2
	exit 2
}

cleanup() {
	if [ -n "$STAGED" ]; then
		run_as "$BIN_SUDO" rm -f "$STAGED" 2>/dev/null || true
	fi
	if [ -n "$WORKDIR" ]; then
		rm -rf "$WORKDIR"
	fi
}

# run_as SUDO CMD...: runs CMD, through sudo when SUDO is "sudo".
run_as() {
	if [ "$1" = sudo ]; then
		shift
		sudo "$@"
	else
		shift
		"$@"
	fi
}

is_root() {
	[ "$(id -u)" -eq 0 ]
}

# Whether the current user can create or replace files in directory $1: the
# directory itself or, when missing, its nearest existing ancestor is
# writable. The loop ends because dirname reaches "/" (or ".").
can_write() {
	dir=$1
	while [ ! -d "$dir" ]; do
		dir=$(dirname "$dir")
	done
	[ -w "$dir" ]
}

# Prints "sudo" when writing to directory $1 needs it, "" when not; fails
# when it needs it and sudo cannot be used.
sudo_for() {
	if can_write "$1"; then
		return 0
	elif ! is_root && command -v sudo >/dev/null 2>&1; then
		printf 'sudo\n'
	else
		return 1
	fi
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--version | --prefix)
			[ $# -ge 2 ] || usage_error "$1 needs a value"
			set_option "$1" "$2"
			shift 2
			;;
		--version=* | --prefix=*)
			set_option "${1%%=*}" "${1#*=}"
			shift
			;;
		--server)
			SERVER=1
			shift
			;;
		--uninstall)
			UNINSTALL=1
			shift
			;;
		-h | --help)
			usage
			exit 0
			;;
		*)
			usage_error "unknown option: $1"
			;;
		esac
	done
}

set_option() {
	case $1 in
	--version) VERSION=$2 ;;
	--prefix)
		[ -n "$2" ] || usage_error "--prefix needs a directory"
		case $2 in
		/*) PREFIX=$2 ;;
		*) PREFIX=$(pwd)/$2 ;;
		esac
		;;
	esac
}

check_version() {
	VERSION=${VERSION#v}
	case $VERSION in
	latest) ;;
	"" | *[!0-9A-Za-z.+-]*) usage_error "invalid version: '$VERSION' (expected X.Y.Z or latest)" ;;
	esac
}

# Where the binaries and SHA256SUMS of the chosen release are.
release_url() {
	if [ -n "${OPENME_DOWNLOAD_URL:-}" ]; then
		printf '%s\n' "${OPENME_DOWNLOAD_URL%/}"
	elif [ "$VERSION" = latest ]; then
		printf '%s\n' "$RELEASES_URL/latest/download"
	else
		printf '%s\n' "$RELEASES_URL/download/v$VERSION"
	fi
}

detect_platform() {
	os=${OPENME_UNAME_S:-$(uname -s)}
	arch=${OPENME_UNAME_M:-$(uname -m)}
	case $os in
	Linux) os_suffix=unknown-linux-gnu ;;
	Darwin) os_suffix=apple-darwin ;;
	MINGW* | MSYS* | CYGWIN* | Windows_NT)
		die "this script does not install on Windows; download $(release_url)/openme-x86_64-pc-windows-msvc.exe and check it against $(release_url)/SHA256SUMS (see the README)"
		;;
	*) die "unsupported operating system: $os (openme ships binaries for Linux and macOS, and Windows x86_64)" ;;
	esac
	case $arch in
	x86_64 | amd64) arch=x86_64 ;;
	aarch64 | arm64) arch=aarch64 ;;
	*) die "unsupported CPU architecture: $arch (openme ships x86_64 and aarch64 binaries)" ;;
	esac
	# A shell under Rosetta reports x86_64 on Apple silicon: prefer the native build.
	if [ "$os" = Darwin ] && [ "$arch" = x86_64 ] && [ -z "${OPENME_UNAME_M:-}" ] &&
		[ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
		arch=aarch64
	fi
	if [ "$SERVER" -eq 1 ] && [ "$os" != Linux ]; then
		die "--server needs Linux (the server uses nftables or iptables and systemd); on $os openme is a client only"
	fi
	ASSET="openme-$arch-$os_suffix"
}

find_tools() {
	if command -v curl >/dev/null 2>&1; then
		DOWNLOADER=curl
	elif command -v wget >/dev/null 2>&1; then
		DOWNLOADER=wget
	else
		die "neither curl nor wget is installed; install one of them and run this again"
	fi
	if command -v sha256sum >/dev/null 2>&1; then
		HASHER=sha256sum
	elif command -v shasum >/dev/null 2>&1; then
		HASHER=shasum
	else
		die "neither sha256sum nor shasum is installed, so the download cannot be verified; install coreutils (or perl's shasum) and run this again"
	fi
}

# Whether URL $1 may be downloaded from: https, or plain http to this
# machine (127.0.0.1, [::1] or localhost, with an optional port) for a local
# mirror. Anything else in the host part (a user name, another host) is not
# this machine.
url_allowed() {
	case $1 in
	https://*) return 0 ;;
	http://*) ;;
	*) return 1 ;;
	esac
	authority=${1#http://}
	authority=${authority%%/*}
	case $authority in
	127.0.0.1 | localhost | "[::1]") return 0 ;;
	127.0.0.1:* | localhost:* | "[::1]":*) ;;
	*) return 1 ;;
	esac
	case ${authority##*:} in
	"" | *[!0-9]*) return 1 ;;
	esac
	return 0
}

# Whether a download of URL $1 may end at URL $2 after redirects: from https
# only to https; from a local mirror to any URL url_allowed accepts.
redirect_allowed() {
	case $1 in
	https://*)
		case $2 in
		https://*) return 0 ;;
		*) return 1 ;;
		esac
		;;
	*) url_allowed "$2" ;;
	esac
}

# download URL FILE: fails when URL cannot be fetched or redirects where
# redirect_allowed refuses. curl refuses such a redirect itself; wget's
# --https-only covers only recursive downloads, so the URL wget ended at is
# read from its log and checked.
download() {
	case $DOWNLOADER in
	curl) curl -fsSL --proto-redir '=https' --connect-timeout 30 --retry 2 -o "$2" "$1" ;;
	wget)
		if ! LC_ALL=C wget -nv --https-only -T 30 -O "$2" "$1" 2>"$WORKDIR/wget.log"; then
			cat "$WORKDIR/wget.log" >&2
			return 1
		fi
		final=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^URL:/) url = substr($i, 5) } END { print url }' "$WORKDIR/wget.log")
		if ! redirect_allowed "$1" "$final"; then
			rm -f "$2"
			die "$1 led to '$final', which is not https; nothing was installed"
		fi
		;;
	esac
}

sha256_of() {
	case $HASHER in
	sha256sum) sha256sum "$1" ;;
	shasum) shasum -a 256 "$1" ;;
	esac | awk '{ print tolower($1) }'
}

# verify FILE SUMS: fails unless SUMS lists ASSET with FILE's SHA-256.
verify() {
	expected=$(awk -v name="$ASSET" '{ f = $2; sub(/^\*/, "", f); if (f == name) { print tolower($1); exit } }' "$2")
	[ -n "$expected" ] || die "SHA256SUMS has no entry for $ASSET; nothing was installed"
	case $expected in
	*[!0-9a-f]*) die "SHA256SUMS entry for $ASSET is malformed; nothing was installed" ;;
	esac
	[ "${#expected}" -eq 64 ] || die "SHA256SUMS entry for $ASSET is malformed; nothing was installed"
	actual=$(sha256_of "$1")
	if [ "$actual" != "$expected" ]; then
		die "checksum mismatch for $ASSET (expected $expected, got $actual); nothing was installed"
	fi
	say "Verified SHA-256 $actual"
}

choose_bindir() {
	if [ -n "$PREFIX" ]; then
		BINDIR=$PREFIX/bin
	else
		BINDIR=$ROOT$DEFAULT_BINDIR
	fi
	if BIN_SUDO=$(sudo_for "$BINDIR"); then
		return 0
	fi
	if [ -n "$PREFIX" ] || [ -n "$ROOT" ] || [ "$SERVER" -eq 1 ]; then
		die "cannot write to $BINDIR and sudo is not available; run as root"
	fi
	[ -n "${HOME:-}" ] || die "cannot write to $BINDIR, sudo is not available and HOME is not set; use --prefix DIR"
	BINDIR=$HOME/.local/bin
	BIN_SUDO=""
	can_write "$BINDIR" || die "cannot write to $BINDIR; use --prefix DIR"
}

install_binary() {
	url=$(release_url)
	url_allowed "$url" || die "refusing to download from $url: use an https:// URL (plain http only to 127.0.0.1, [::1] or localhost, for a local mirror)"
	label=$VERSION
	[ -z "${OPENME_DOWNLOAD_URL:-}" ] || label="from $url"
	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/openme-install.XXXXXX") || die "cannot create a temporary directory"
	say "Downloading $ASSET ($label)"
	download "$url/$ASSET" "$WORKDIR/$ASSET" || die "could not download $url/$ASSET; nothing was installed"
	download "$url/SHA256SUMS" "$WORKDIR/SHA256SUMS" || die "could not download $url/SHA256SUMS to verify the binary; nothing was installed"
	verify "$WORKDIR/$ASSET" "$WORKDIR/SHA256SUMS"

	if [ "$BIN_SUDO" = sudo ]; then
		say "Installing to $BINDIR with sudo (it may ask for your password)"
	fi
	run_as "$BIN_SUDO" mkdir -p "$BINDIR" || die "cannot create $BINDIR"
	# Stage next to the target, so the final mv is a rename on one file
	# system: the old binary keeps working until the new one is in place.
	STAGED=$BINDIR/.openme.new.$$
	run_as "$BIN_SUDO" cp "$WORKDIR/$ASSET" "$STAGED" || die "cannot write $STAGED"
	run_as "$BIN_SUDO" chmod 755 "$STAGED" || die "cannot chmod $STAGED"
	if ! version=$("$STAGED" --version </dev/null 2>&1); then
		die "the downloaded binary does not run on this machine (Linux builds need glibc): $version"
	fi
	run_as "$BIN_SUDO" mv -f "$STAGED" "$BINDIR/openme" || die "cannot replace $BINDIR/openme"
	STAGED=""
	say "Installed $version to $BINDIR/openme"
	install_man_page
}

# Installs the page `openme man` prints to share/man/man1 next to the bin
# directory (/usr/local/share/man/man1, ~/.local/share/man/man1), where man
# finds it; a release without that command, or no gzip, means no page.
install_man_page() {
	page=$(dirname "$BINDIR")/share/man/man1/openme.1.gz
	if ! "$BINDIR/openme" man >"$WORKDIR/openme.1" 2>/dev/null; then
		warn "this openme has no \`openme man\`: no manual page installed"
		return 0
	fi
	if ! gzip -9n <"$WORKDIR/openme.1" >"$WORKDIR/openme.1.gz"; then
		warn "gzip failed or is not installed: no manual page installed (read it with: openme man | man -l -)"
		return 0
	fi
	run_as "$BIN_SUDO" mkdir -p "$(dirname "$page")" || die "cannot create $(dirname "$page")"
	run_as "$BIN_SUDO" cp "$WORKDIR/openme.1.gz" "$page" || die "cannot write $page"
	run_as "$BIN_SUDO" chmod 644 "$page" || die "cannot chmod $page"
	say "Installed the manual page $page (man openme)"
}

# The systemd unit, identical to openme.service in the repository.
unit_file() {
	cat <<'OPENME_UNIT'
# openme: Single Packet Authorization server.
# The .deb and .rpm packages install it as /usr/lib/systemd/system/openme.service
# (starting /usr/bin/openme); `install.sh --server` as
# /etc/systemd/system/openme.service (starting the binary it installed).
#
# It starts once /etc/openme/config.yaml exists:
#   sudo openme init --server <host> && sudo systemctl start openme
# Follow the log:   journalctl -u openme -f
# Re-read config:   sudo systemctl reload openme  (config edits are also picked up on their own)
#
# The daemon runs as the system user openme (the packages and install.sh
# create it) with only CAP_NET_ADMIN (nft, iptables-nft) and CAP_NET_RAW
# (iptables-legacy). /etc/openme is root:openme 0750 and config.yaml
# root:openme 0640: the daemon reads its config and cannot change it. The
# whole file system is read-only to it except /var/lib/openme
# (StateDirectory=: sessions and replay nonces, kept across reboots); /home
# and /root are hidden.
[Unit]
Description=openme Single Packet Authorization server
Documentation=https://github.com/openme/openme
After=network.target nftables.service netfilter-persistent.service iptables.service ip6tables.service firewalld.service
ConditionPathExists=/etc/openme/config.yaml

[Service]
Type=simple
User=openme
Group=openme
# iptables -w opens /run/xtables.lock read-only and flock()s it: as root ("+"),
# create it if missing and let group openme read it.
ExecStartPre=+/bin/touch /run/xtables.lock
ExecStartPre=+/bin/chgrp openme /run/xtables.lock
ExecStartPre=+/bin/chmod 0640 /run/xtables.lock
ExecStart=/usr/local/bin/openme serve
ExecReload=/bin/kill -HUP $MAINPID
ExecStopPost=/usr/local/bin/openme cleanup
Restart=on-failure
RestartSec=2s
StateDirectory=openme
StateDirectoryMode=0750
UMask=0077

CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=strict
InaccessiblePaths=-/etc/shadow -/etc/gshadow -/etc/ssh -/etc/ssl/private
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectProc=invisible
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
# Measured with strace: deno, nft, iptables-nft and iptables-legacy stay inside
# @system-service, plus pkey_alloc from V8.
SystemCallFilter=@system-service @pkey
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
OPENME_UNIT
}

# Whether systemctl should be used: a real install (no OPENME_ROOT) on a
# machine where it exists.
use_systemctl() {
	[ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1
}

# Prints the path of system tool $1: from PATH, else /usr/sbin or /sbin
# (not on a normal user's PATH on Debian, yet sudo finds them there); fails
# when it is nowhere.
sbin_tool() {
	if command -v "$1" >/dev/null 2>&1; then
		command -v "$1"
	elif [ -x "/usr/sbin/$1" ]; then
		printf '%s\n' "/usr/sbin/$1"
	elif [ -x "/sbin/$1" ]; then
		printf '%s\n' "/sbin/$1"
	else
		return 1
	fi
}

group_exists() {
	if command -v getent >/dev/null 2>&1; then
		getent group "$1" >/dev/null 2>&1
	else
		grep -q "^$1:" /etc/group
	fi
}

user_exists() {
	id -u "$1" >/dev/null 2>&1
}

# ensure_service_user SUDO: creates the system group and user SERVICE_USER
# (no home, no login shell) unless they exist.
ensure_service_user() {
	nologin=/bin/false
	for candidate in /usr/sbin/nologin /sbin/nologin; do
		if [ -x "$candidate" ]; then
			nologin=$candidate
			break
		fi
	done
	if ! group_exists "$SERVICE_USER"; then
		if tool=$(sbin_tool groupadd); then
			run_as "$1" "$tool" --system "$SERVICE_USER" || die "cannot create the system group $SERVICE_USER"
		elif tool=$(sbin_tool addgroup); then
			run_as "$1" "$tool" --system "$SERVICE_USER" || die "cannot create the system group $SERVICE_USER"
		else
			die "neither groupadd nor addgroup is installed: create a system group and user named $SERVICE_USER yourself, then run this again"
		fi
		say "Created the system group $SERVICE_USER"
	fi
	if ! user_exists "$SERVICE_USER"; then
		if tool=$(sbin_tool useradd); then
			run_as "$1" "$tool" --system --gid "$SERVICE_USER" --no-create-home --home-dir /nonexistent \
				--shell "$nologin" --no-log-init --comment "openme SPA server" "$SERVICE_USER" ||
				die "cannot create the system user $SERVICE_USER"
		elif tool=$(sbin_tool adduser); then
			run_as "$1" "$tool" --system --ingroup "$SERVICE_USER" --no-create-home --home /nonexistent \
				--shell "$nologin" --gecos "openme SPA server" "$SERVICE_USER" ||
				die "cannot create the system user $SERVICE_USER"
		else
			die "neither useradd nor adduser is installed: create a system user named $SERVICE_USER yourself, then run this again"
		fi
		say "Created the system user $SERVICE_USER"
	fi
}

install_server() {
	etc=$ROOT/etc
	etc_sudo=$(sudo_for "$etc") || die "--server writes to $etc: run as root or install sudo"
	unit=$etc/systemd/system/$UNIT_NAME
	# The binary's path as the installed system sees it.
	case $BINDIR in
	"$ROOT"/*) exec_path=${BINDIR#"$ROOT"}/openme ;;
	*) exec_path=$BINDIR/openme ;;
	esac
	case $exec_path in
	*[!A-Za-z0-9._/+-]*) die "cannot write a systemd unit for $exec_path: use a --prefix made of letters, digits and . _ / + -" ;;
	esac

	# The service runs as this user (User=openme in the unit).
	if [ -z "$ROOT" ]; then
		ensure_service_user "$etc_sudo"
	fi

	# Every Exec line that starts openme starts the binary installed here.
	unit_file | sed "/^Exec/s#/usr/local/bin/openme #$exec_path #" >"$WORKDIR/$UNIT_NAME"
	run_as "$etc_sudo" mkdir -p "$etc/systemd/system" || die "cannot create $etc/systemd/system"
	run_as "$etc_sudo" cp "$WORKDIR/$UNIT_NAME" "$unit" || die "cannot write $unit"
	run_as "$etc_sudo" chmod 644 "$unit" || die "cannot chmod $unit"
	say "Installed the systemd unit $unit"

	# The config holds the server's private key. root owns /etc/openme and
	# config.yaml; the service's group reads them and cannot change them: the
	# directory 0750 and the config 0640, as `sudo openme init` writes it.
	if [ -d "$etc/openme" ]; then
		case $(stat -c %a "$etc/openme") in
		*[!0]) warn "$etc/openme is open to all users; it holds the server's private key: chmod 750 $etc/openme" ;;
		*[2367]?) warn "the group of $etc/openme may change it; only root should: chmod 750 $etc/openme" ;;
		esac
	else
		run_as "$etc_sudo" mkdir -p -m 750 "$etc/openme" || die "cannot create $etc/openme"
		say "Created $etc/openme (mode 0750)"
	fi
	if [ -n "$ROOT" ]; then
		say "OPENME_ROOT is set: no $SERVICE_USER user was created; in the image, create the system user and group $SERVICE_USER, then run chown root:$SERVICE_USER /etc/openme /etc/openme/config.yaml"
	else
		run_as "$etc_sudo" chown "root:$SERVICE_USER" "$etc/openme" || die "cannot chown $etc/openme to root:$SERVICE_USER"
		config=$etc/openme/config.yaml
		if [ -L "$config" ]; then
			warn "$config is a symbolic link: make the file it points to readable by the group $SERVICE_USER"
		elif [ -f "$config" ]; then
			# -h: never follow a link that appeared since the test above.
			run_as "$etc_sudo" chown -h "root:$SERVICE_USER" "$config" || die "cannot chown $config to root:$SERVICE_USER"
			run_as "$etc_sudo" chmod 640 "$config" || die "cannot chmod $config"
		fi
		say "$etc/openme is root:$SERVICE_USER: the service reads its config there and cannot change it"
	fi

	if use_systemctl; then
		run_as "$etc_sudo" systemctl daemon-reload || warn "systemctl daemon-reload failed"
		run_as "$etc_sudo" systemctl enable "$UNIT_NAME" || warn "systemctl enable $UNIT_NAME failed"
		if systemctl is-active --quiet "$UNIT_NAME" 2>/dev/null; then
			say "openme is running the old binary: sudo systemctl restart openme"
		fi
	elif [ -n "$ROOT" ]; then
		say "OPENME_ROOT is set: systemctl was not run"
	else
		warn "systemctl not found: start \`$exec_path serve\` as the user $SERVICE_USER with CAP_NET_ADMIN and CAP_NET_RAW with your init system"
	fi
}

print_next_steps() {
	case :${PATH:-}: in
	*:"$BINDIR":*) ;;
	*)
		say ""
		say "$BINDIR is not on your PATH; add it, e.g. in ~/.profile:"
		say "  export PATH=\"$BINDIR:\$PATH\""
		;;
	esac
	say ""
	say "Next steps:"
	if [ "$SERVER" -eq 1 ]; then
		say "  The service starts once /etc/openme/config.yaml exists:"
		say "    sudo openme init --server <host> && sudo systemctl start openme"
		say "  Then add a client:  sudo openme add <name>"
	else
		say "  On a client: openme import FILE   (the profiles: block printed by \`openme add\` on the server)"
		say "  On a server: sudo openme init --server <host>   (install with --server for the systemd unit)"
	fi
}

uninstall() {
	removed=0
	if [ -n "$PREFIX" ]; then
		set -- "$PREFIX/bin/openme"
	else
		set -- "$ROOT$DEFAULT_BINDIR/openme" "${HOME:-/nonexistent}/.local/bin/openme"
	fi
	for bin in "$@"; do
		# The binary and the manual page installed with it.
		for file in "$bin" "$(dirname "$(dirname "$bin")")/share/man/man1/openme.1.gz"; do
			if [ -e "$file" ] || [ -L "$file" ]; then
				rm_sudo=$(sudo_for "$(dirname "$file")") || die "cannot remove $file: run as root"
				run_as "$rm_sudo" rm -f "$file" || die "cannot remove $file"
				say "Removed $file"
				removed=1
			fi
		done
	done
	if [ "$SERVER" -eq 1 ]; then
		etc=$ROOT/etc
		unit=$etc/systemd/system/$UNIT_NAME
		etc_sudo=$(sudo_for "$etc") || die "--server writes to $etc: run as root or install sudo"
		if use_systemctl && [ -e "$unit" ]; then
			run_as "$etc_sudo" systemctl disable --now "$UNIT_NAME" || warn "systemctl disable --now $UNIT_NAME failed"
		fi
		if [ -e "$unit" ]; then
			run_as "$etc_sudo" rm -f "$unit" || die "cannot remove $unit"
			say "Removed $unit"
			removed=1
			if use_systemctl; then
				run_as "$etc_sudo" systemctl daemon-reload || warn "systemctl daemon-reload failed"
			fi
		fi
		if [ -d "$etc/openme" ]; then
			say "Kept $etc/openme (server config and keys); remove it yourself when no longer needed"
		fi
		if [ -z "$ROOT" ] && user_exists "$SERVICE_USER"; then
			say "Kept the system user $SERVICE_USER; remove it with: sudo userdel $SERVICE_USER"
		fi
	fi
	if [ "$removed" -eq 0 ]; then
		say "openme is not installed in $*; nothing to remove"
	fi
}

main() {
	VERSION=${OPENME_VERSION:-latest}
	ROOT=${OPENME_ROOT:-}
	ROOT=${ROOT%/}
	parse_args "$@"
	check_version
	trap cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if [ "$UNINSTALL" -eq 1 ]; then
		uninstall
		return 0
	fi
	detect_platform
	find_tools
	choose_bindir
	install_binary
	if [ "$SERVER" -eq 1 ]; then
		install_server
	fi
	print_next_steps
}

main "$@"
