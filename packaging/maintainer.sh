# openme's package maintainer scripts: one implementation for the .deb
# (postinst, prerm, postrm) and the .rpm (%pre, %post, %preun, %postun).
# scripts/package.sh puts this text into each script and appends the line
# that runs it, `main FORMAT SCRIPT ARGUMENTS...`.
#
# The scripts never write or overwrite a config and never start the service.
# Where systemd is not running (a container, a chroot) they say what they
# skipped and go on: that never fails the transaction.

set -e

UNIT=openme.service
ACCOUNT=openme
CONFIG_DIR=/etc/openme
STATE_DIR=/var/lib/openme
BINARY=/usr/bin/openme

say() {
	printf 'openme: %s\n' "$*"
}

# Whether systemd runs this machine (not so in most containers and chroots).
systemd_running() {
	[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# The system group and user the unit runs as: no home, no login shell.
create_account() {
	if ! getent group "$ACCOUNT" >/dev/null; then
		groupadd --system "$ACCOUNT"
		say "created the system group $ACCOUNT"
	fi
	if ! getent passwd "$ACCOUNT" >/dev/null; then
		shell=/bin/false
		for nologin in /usr/sbin/nologin /sbin/nologin; do
			if [ -x "$nologin" ]; then
				shell=$nologin
				break
			fi
		done
		useradd --system --gid "$ACCOUNT" --no-create-home --home-dir /nonexistent \
			--shell "$shell" --comment "openme SPA server" "$ACCOUNT"
		say "created the system user $ACCOUNT"
	fi
}

# /etc/openme root:openme 0750 (the service reads, only root writes) and the
# unit's StateDirectory; existing ones are left exactly as they are.
create_directories() {
	if [ ! -d "$CONFIG_DIR" ]; then
		install -d -o root -g "$ACCOUNT" -m 0750 "$CONFIG_DIR"
		say "created $CONFIG_DIR (root:$ACCOUNT, mode 0750)"
	fi
	if [ ! -d "$STATE_DIR" ]; then
		install -d -o "$ACCOUNT" -g "$ACCOUNT" -m 0750 "$STATE_DIR"
	fi
}

# Enables the unit without starting it: it starts at the next boot, or with
# `systemctl start openme`, once the config exists.
enable_unit() {
	if ! command -v systemctl >/dev/null 2>&1; then
		say "systemctl not found: skipped enabling $UNIT; start $BINARY serve as the user $ACCOUNT with your init system"
		return 0
	fi
	if systemd_running; then
		systemctl daemon-reload || say "systemctl daemon-reload failed"
	else
		say "systemd is not running: skipped systemctl daemon-reload"
	fi
	if systemctl enable "$UNIT"; then
		say "enabled $UNIT; it is not started"
	else
		say "could not enable $UNIT: run sudo systemctl enable openme"
	fi
}

# After an upgrade: a running service restarts with the new binary, a
# stopped one stays stopped.
restart_if_running() {
	if ! systemd_running; then
		say "systemd is not running: skipped restarting $UNIT"
		return 0
	fi
	systemctl daemon-reload || say "systemctl daemon-reload failed"
	if systemctl is-active --quiet "$UNIT"; then
		if systemctl restart "$UNIT"; then
			say "restarted $UNIT"
		else
			say "could not restart $UNIT: see journalctl -u openme"
		fi
	fi
}

next_step() {
	if [ ! -e "$CONFIG_DIR/config.yaml" ]; then
		say "next, create the server config (HOST: the name or address clients knock at):"
		say "  sudo openme init --server HOST"
	fi
}

# Stops and disables the service and removes whatever firewall rule of
# openme is left (a crashed daemon's); the config and the state stay.
stop_and_disable() {
	if systemd_running; then
		systemctl stop "$UNIT" || say "could not stop $UNIT"
	else
		say "systemd is not running: skipped stopping $UNIT"
	fi
	if [ ! -x "$BINARY" ]; then
		say "$BINARY is missing: skipped removing openme's firewall rules"
	elif ! "$BINARY" cleanup --help >/dev/null 2>&1; then
		say "this openme has no \`openme cleanup\`: skipped removing leftover firewall rules"
	elif ! "$BINARY" cleanup; then
		say "openme cleanup failed: remove the rules tagged openme yourself (see the README)"
	fi
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable "$UNIT" || say "could not disable $UNIT"
	else
		say "systemctl not found: skipped disabling $UNIT"
	fi
}

after_remove() {
	if systemd_running; then
		systemctl daemon-reload || say "systemctl daemon-reload failed"
	fi
	say "kept $CONFIG_DIR (config and keys), $STATE_DIR and the user $ACCOUNT"
	say "  remove them with: $1"
}

# Removes the config, the state, local unit settings and the account.
purge() {
	rm -rf "$CONFIG_DIR" "$STATE_DIR" "/etc/systemd/system/$UNIT.d" \
		"/etc/systemd/system/multi-user.target.wants/$UNIT"
	# The unit lets its group take the iptables lock; give it back to root.
	if [ -e /run/xtables.lock ] && [ "$(stat -c %G /run/xtables.lock)" = "$ACCOUNT" ]; then
		chgrp root /run/xtables.lock
	fi
	if getent passwd "$ACCOUNT" >/dev/null; then
		userdel "$ACCOUNT" || say "could not remove the user $ACCOUNT (does a process still run as it?)"
	fi
	if getent group "$ACCOUNT" >/dev/null; then
		groupdel "$ACCOUNT" || say "could not remove the group $ACCOUNT"
	fi
	if systemd_running; then
		systemctl daemon-reload || say "systemctl daemon-reload failed"
	fi
	say "removed $CONFIG_DIR, $STATE_DIR and the user $ACCOUNT"
}

# main FORMAT SCRIPT ARGUMENTS...: what each script does, by dpkg's action
# argument or rpm's count of installed versions.
main() {
	case $1:$2:${3:-} in
	deb:postinst:configure)
		create_account
		create_directories
		# configure with no old version: a first install.
		if [ -z "${4:-}" ]; then
			enable_unit
		else
			restart_if_running
		fi
		next_step
		;;
	deb:prerm:remove) stop_and_disable ;;
	deb:postrm:remove) after_remove "sudo apt purge openme" ;;
	deb:postrm:purge) purge ;;
	rpm:pre:*) create_account ;;
	rpm:post:1)
		create_directories
		enable_unit
		next_step
		;;
	rpm:post:*)
		create_directories
		restart_if_running
		;;
	rpm:preun:0) stop_and_disable ;;
	rpm:postun:0) after_remove "sudo rm -r $CONFIG_DIR $STATE_DIR && sudo userdel $ACCOUNT" ;;
	esac
}
