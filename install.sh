#!/bin/sh
# openme installer: https://github.com/openme/openme
#
#   curl -fsSL https://github.com/openme/openme/releases/latest/download/install.sh | sh
#   curl -fsSL https://github.com/openme/openme/releases/latest/download/install.sh | sh -s -- --server
#
# Downloads the openme binary for this machine from a GitHub release, checks
# its SHA-256 against the release's SHA256SUMS and only then installs it,
# replacing an older binary in one rename. `sh install.sh --help` lists the
# options. Everything below is a function and `main` runs on the last line, so
# a download cut short runs nothing.

set -eu

RELEASES_URL="https://github.com/openme/openme/releases"
DEFAULT_BINDIR="/usr/local/bin"
UNIT_NAME="openme.service"

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
release's SHA256SUMS. Running it again upgrades in place.

Options:
  --version X.Y.Z  release to install (default: the latest release)
  --prefix DIR     install to DIR/bin/openme (default: /usr/local/bin/openme,
                   with sudo when needed; ~/.local/bin/openme without sudo)
  --server         also install the systemd unit and create /etc/openme
                   (Linux, needs root or sudo); enables but does not start it
  --uninstall      remove the binary; with --server also the unit
                   (/etc/openme is kept)
  -h, --help       show this help

Environment:
  OPENME_VERSION       same as --version
  OPENME_DOWNLOAD_URL  base URL holding the binaries and SHA256SUMS
                       (default: the GitHub release of the chosen version)
  OPENME_ROOT          install under this directory instead of / (packaging
                       and tests); nothing is enabled or started
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

# download URL FILE
download() {
	case $DOWNLOADER in
	curl) curl -fsSL --proto-redir '=https' --connect-timeout 30 --retry 2 -o "$2" "$1" ;;
	wget) wget -q -T 30 -O "$2" "$1" ;;
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
}

# The systemd unit, identical to openme.service in the repository.
unit_file() {
	cat <<'OPENME_UNIT'
# openme: Single Packet Authorization server.
# Installed by `install.sh --server` to /etc/systemd/system/openme.service.
#
# It starts once /etc/openme/config.yaml exists:
#   sudo openme init --server <host> && sudo systemctl start openme
# Follow the log:   journalctl -u openme -f
# Re-read config:   sudo systemctl reload openme  (config edits are also picked up on their own)
#
# The daemon runs as root but holds only CAP_NET_ADMIN (nft, iptables-nft) and
# CAP_NET_RAW (iptables-legacy): no CAP_DAC_OVERRIDE, so it reads only files
# root owns, which is what `openme init`/`openme add` write (mode 0600).
# The rest of the system is read-only to it, /home and /root are hidden.
[Unit]
Description=openme Single Packet Authorization server
Documentation=https://github.com/openme/openme
After=network.target nftables.service netfilter-persistent.service iptables.service ip6tables.service firewalld.service
ConditionPathExists=/etc/openme/config.yaml

[Service]
Type=simple
ExecStartPre=+/bin/touch /run/xtables.lock
ExecStart=/usr/local/bin/openme serve
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
RuntimeDirectory=openme
UMask=0077

CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=-/run/xtables.lock
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

	unit_file | sed "s#^ExecStart=/usr/local/bin/openme #ExecStart=$exec_path #" >"$WORKDIR/$UNIT_NAME"
	run_as "$etc_sudo" mkdir -p "$etc/systemd/system" || die "cannot create $etc/systemd/system"
	run_as "$etc_sudo" cp "$WORKDIR/$UNIT_NAME" "$unit" || die "cannot write $unit"
	run_as "$etc_sudo" chmod 644 "$unit" || die "cannot chmod $unit"
	say "Installed the systemd unit $unit"

	# The config holds the server's private key: no access for other users,
	# the same mode `openme init` gives the directory when it creates it.
	if [ -d "$etc/openme" ]; then
		case $(stat -c %a "$etc/openme") in
		*0) ;;
		*) warn "$etc/openme is open to all users; it holds the server's private key: chmod 750 $etc/openme" ;;
		esac
	else
		run_as "$etc_sudo" mkdir -p -m 750 "$etc/openme" || die "cannot create $etc/openme"
		say "Created $etc/openme (mode 0750)"
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
		warn "systemctl not found: start \`$exec_path serve\` with your init system"
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
	for file in "$@"; do
		if [ -e "$file" ] || [ -L "$file" ]; then
			rm_sudo=$(sudo_for "$(dirname "$file")") || die "cannot remove $file: run as root"
			run_as "$rm_sudo" rm -f "$file" || die "cannot remove $file"
			say "Removed $file"
			removed=1
		fi
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
