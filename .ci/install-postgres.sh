#!/bin/sh
# Installs the PostgreSQL server binaries the tests need (load/postgres/pgtest
# runs its own throwaway cluster with initdb and pg_ctl). Idempotent: does
# nothing when initdb is already in PATH or in /usr/lib/postgresql/*/bin.
# Debian-based machines only; runs as root or through sudo.
set -eu

have_initdb() {
	command -v initdb >/dev/null 2>&1 && return 0
	for f in /usr/lib/postgresql/*/bin/initdb; do
		[ -x "$f" ] && return 0
	done
	return 1
}

if have_initdb; then
	echo "install-postgres: initdb found, nothing to do"
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

# The package's maintainer scripts create and start a cluster as a service.
# The tests never use it, so forbid service starts for the duration of the
# install (policy-rc.d exit code 101 = action forbidden) and keep Debian from
# creating the default cluster at all (force-confold keeps this file when the
# package brings its own).
policy=/usr/sbin/policy-rc.d
created_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	created_policy=1
fi
cleanup() {
	if [ -n "$created_policy" ]; then
		$SUDO rm -f "$policy"
	fi
}
trap cleanup EXIT

conf=/etc/postgresql-common/createcluster.conf
if [ ! -e "$conf" ]; then
	$SUDO mkdir -p "$(dirname "$conf")"
	echo "create_main_cluster = false" | $SUDO tee "$conf" >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql

if ! have_initdb; then
	echo "install-postgres: postgresql installed but initdb still not found" >&2
	exit 1
fi
echo "install-postgres: installed $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
