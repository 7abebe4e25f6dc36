#!/usr/bin/env bash
# Builds openme's .deb and .rpm from a compiled binary, with one file list
# (packaging/files.txt) and one set of maintainer scripts
# (packaging/maintainer.sh) for both:
#
#   bash scripts/package.sh --binary dist/openme-x86_64-unknown-linux-gnu \
#     --version 1.2.3 --arch amd64 --out dist
#
# writes dist/openme_1.2.3_amd64.deb and dist/openme-1.2.3-1.x86_64.rpm and
# prints their paths. It needs dpkg-deb, rpmbuild, gzip and readelf, and no
# network. The manual page and the shell completions come from running the
# binary (`openme man`, `openme completion SHELL`); for a binary this machine
# cannot run (arm64 on x86_64), --docs-from names one of the same version
# that it can. SOURCE_DATE_EPOCH, when set, fixes every timestamp.
set -euo pipefail

HOMEPAGE="https://github.com/openme/openme"
# Placeholders until the project names them.
MAINTAINER="openme maintainers <openme@users.noreply.github.com>"
LICENSE_NAME="LicenseRef-not-declared"
SUMMARY="Single Packet Authorization: ports stay closed until you knock"
DESCRIPTION="openme keeps service ports (SSH, VPN, admin panels) closed behind a
default-deny nftables or iptables firewall. A client sends one signed,
encrypted UDP packet; the server opens that client's ports for its address
only, for a few seconds, and never answers anything. One binary holds the
server (openme serve, with a hardened systemd unit) and the client
(openme knock)."

here=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	cat <<'EOF'
Usage: bash scripts/package.sh --binary FILE --version X.Y.Z --arch amd64|arm64 --out DIR [--docs-from FILE]

Writes DIR/openme_X.Y.Z_ARCH.deb and DIR/openme-X.Y.Z-1.<x86_64|aarch64>.rpm
from the openme binary FILE and prints their paths.

  --docs-from FILE  run FILE instead of --binary to print the manual page and
                    completions (a binary of the same version for this machine)
EOF
}

fail() {
	printf 'package.sh: %s\n' "$*" >&2
	exit 1
}

binary="" version="" arch="" out="" docs_from=""
while [ $# -gt 0 ]; do
	case $1 in
	--binary | --version | --arch | --out | --docs-from)
		[ $# -ge 2 ] || { usage >&2; fail "$1 needs a value"; }
		case $1 in
		--binary) binary=$2 ;;
		--version) version=$2 ;;
		--arch) arch=$2 ;;
		--out) out=$2 ;;
		--docs-from) docs_from=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		fail "unknown argument: $1"
		;;
	esac
done
if [ -z "$binary" ] || [ -z "$version" ] || [ -z "$arch" ] || [ -z "$out" ]; then
	usage >&2
	fail "--binary, --version, --arch and --out are required"
fi
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version $version is not X.Y.Z"
case $arch in
amd64) rpm_arch=x86_64 elf_machine=3e00 ;;
arm64) rpm_arch=aarch64 elf_machine=b700 ;;
*) fail "--arch $arch is not amd64 or arm64" ;;
esac
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
	fail "--binary $binary is not an executable file"
fi
docs_from=${docs_from:-$binary}
for tool in dpkg-deb rpmbuild gzip readelf; do
	command -v "$tool" >/dev/null || fail "$tool is not installed (apt install dpkg-dev rpm gzip binutils)"
done

# A compiled binary must be for --arch (e_machine, at byte 18 of the ELF
# header); the tests package a shell script that runs main.ts instead.
is_elf=0
if [ "$(head -c 4 "$binary" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
	is_elf=1
	machine=$(od -An -tx1 -j 18 -N 2 "$binary" | tr -d ' \n')
	[ "$machine" = "$elf_machine" ] || fail "$binary is not an $arch binary (ELF machine $machine)"
fi
reported=$("$docs_from" --version </dev/null) || fail "$docs_from --version failed"
[[ $reported == "openme $version "* ]] || fail "$docs_from reports '$reported', not openme $version"

work=$(mktemp -d "${TMPDIR:-/tmp}/openme-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)
epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}

# --- The files the list names, in $work/src.
src=$work/src
mkdir "$src"
cp "$binary" "$src/openme"
"$docs_from" man | gzip -9n >"$src/openme.1.gz"
"$docs_from" completion bash >"$src/openme.bash"
"$docs_from" completion zsh >"$src/_openme"
"$docs_from" completion fish >"$src/openme.fish"
# Every Exec line that starts openme starts the packaged binary.
sed '/^Exec/s#/usr/local/bin/openme #/usr/bin/openme #' "$here/openme.service" >"$src/openme.service"
cp "$here/README.md" "$src/README.md"
cp "$here/packaging/lintian-overrides" "$src/lintian-overrides"
if [ -f "$here/LICENSE" ]; then
	{ printf 'openme\nSource: %s\n\n' "$HOMEPAGE"; cat "$here/LICENSE"; } >"$src/copyright"
else
	printf 'openme\nSource: %s\n\nNo licence has been declared for openme yet.\n' "$HOMEPAGE" >"$src/copyright"
	printf 'package.sh: warning: no LICENSE file; the packages say no licence is declared\n' >&2
fi
printf 'openme (%s) unstable; urgency=medium\n\n  * Release %s: %s/releases/tag/v%s\n\n -- %s  %s\n' \
	"$version" "$version" "$HOMEPAGE" "$version" "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$epoch")" |
	gzip -9n >"$src/changelog.gz"

# stage FORMAT DIR: installs the list's files for FORMAT (deb or rpm) under DIR.
stage() {
	local source destination mode only
	while read -r source destination mode only; do
		case $source in "" | "#"*) continue ;; esac
		[ -z "$only" ] || [ "$only" = "$1" ] || continue
		install -D -m "$mode" "$src/$source" "$2$destination"
	done <"$here/packaging/files.txt"
	find "$2" -exec touch -h -d "@$epoch" {} +
}

# A maintainer script: the shared text, then the call for this FORMAT SCRIPT.
maintainer_script() {
	cat "$here/packaging/maintainer.sh"
	printf '\nmain %s %s "$@"\n' "$1" "$2"
}

# --- .deb
deb_root=$work/deb
stage deb "$deb_root"
depends="nftables | iptables, passwd"
if [ "$is_elf" = 1 ]; then
	# The newest glibc symbol version the binary needs, and libgcc_s.
	glibc=$(readelf --version-info --wide "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
	depends="libc6 (>= ${glibc:-2.17}), $depends"
	if readelf --dynamic "$binary" | grep -q 'Shared library: \[libgcc_s\.so\.1\]'; then
		depends="libgcc-s1, $depends"
	fi
fi
mkdir -m 0755 "$deb_root/DEBIAN"
{
	printf 'Package: openme\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n' "$version" "$arch" "$MAINTAINER"
	printf 'Installed-Size: %s\nDepends: %s\n' "$(du -sk --apparent-size "$deb_root" | cut -f1)" "$depends"
	printf 'Section: net\nPriority: optional\nHomepage: %s\nDescription: %s\n' "$HOMEPAGE" "$SUMMARY"
	printf '%s\n' "$DESCRIPTION" | sed 's/^/ /'
} >"$deb_root/DEBIAN/control"
(cd "$deb_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$deb_root/DEBIAN/md5sums"
# Files under /etc are conffiles: dpkg keeps the operator's edits.
if [ -d "$deb_root/etc" ]; then
	(cd "$deb_root" && find etc -type f -printf '/%p\n' | sort) >"$deb_root/DEBIAN/conffiles"
fi
for script in postinst prerm postrm; do
	{ printf '#!/bin/sh\n'; maintainer_script deb "$script"; } >"$deb_root/DEBIAN/$script"
	chmod 0755 "$deb_root/DEBIAN/$script"
done
chmod 0644 "$deb_root/DEBIAN/control" "$deb_root/DEBIAN/md5sums"
find "$deb_root" -exec touch -h -d "@$epoch" {} +
deb=$out/openme_${version}_$arch.deb
# xz, not zstd: older dpkg (Debian 11 and 12) cannot unpack zstd.
SOURCE_DATE_EPOCH=$epoch dpkg-deb -Zxz --root-owner-group --build "$deb_root" "$deb" >/dev/null

# --- .rpm: rpm expands % in the spec, so the scripts' % become %%.
rpm_root=$work/rpm-root
stage rpm "$rpm_root"
spec=$work/openme.spec
{
	printf 'Name: openme\nVersion: %s\nRelease: 1\nSummary: %s\nLicense: %s\nURL: %s\n' "$version" "$SUMMARY" "$LICENSE_NAME" "$HOMEPAGE"
	printf 'Requires: (nftables or iptables)\nRequires(pre): /usr/sbin/useradd, /usr/sbin/groupadd\n'
	# The binary is used as built: no stripping (it would cut off the
	# program deno compile appended), no debug package, no build-id links.
	printf '%%global debug_package %%{nil}\n%%global __os_install_post %%{nil}\n%%define _build_id_links none\n\n'
	printf '%%description\n%s\n\n%%install\ncp -a %s/. %%{buildroot}/\n\n' "$DESCRIPTION" "$rpm_root"
	printf '%%files\n'
	(cd "$rpm_root" && find . -type f -printf '%m /%P\n' | sort -k2) | while read -r mode path; do
		case $path in
		/etc/*) printf '%%config(noreplace) %%attr(%s,root,root) %s\n' "$mode" "$path" ;;
		*) printf '%%attr(%s,root,root) %s\n' "$mode" "$path" ;;
		esac
	done
	printf '%%dir %%attr(755,root,root) /usr/share/doc/openme\n'
	for script in pre post preun postun; do
		printf '\n%%%s\n' "$script"
		maintainer_script rpm "$script" | sed 's/%/%%/g'
	done
} >"$spec"
SOURCE_DATE_EPOCH=$epoch rpmbuild -bb --quiet --target "$rpm_arch-linux" \
	--define "_topdir $work/rpmbuild" --define "_tmppath $work/tmp" --define "_rpmdir $out" \
	--define "_dbpath $work/rpmdb" \
	--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
	--define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
	"$spec" >/dev/null
rpm=$out/openme-$version-1.$rpm_arch.rpm
[ -f "$rpm" ] || fail "rpmbuild did not write $rpm"

printf '%s\n%s\n' "$deb" "$rpm"
