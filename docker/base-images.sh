#!/usr/bin/env bash
# Make the base images docker/Dockerfile builds FROM, debian:12 and debian:12-slim, when they
# are missing and no image registry is reachable: one `debootstrap --variant=minbase bookworm`
# from the Debian mirror this machine's apt uses, imported twice — as debian:12, and, with
# documentation, man pages and locales removed and excluded from later installs (as the
# official slim image does), as debian:12-slim. Images already present are left alone.
#   docker/base-images.sh            (DOCKER=/usr/bin/docker, DEBIAN_MIRROR=URL to override)
# Needs root and debootstrap. Prints what it did; exit status 0 when both tags exist.
set -euo pipefail
docker=${DOCKER:-docker}
need=()
for tag in debian:12 debian:12-slim; do
	$docker image inspect "$tag" >/dev/null 2>&1 || need+=("$tag")
done
[ ${#need[@]} -eq 0 ] && exit 0

# The mirror: the first Debian (non-security) URI in apt's sources, deb822 or one-line format.
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }')
fi
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } break } }')
fi
mirror=${mirror:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "base-images: debootstrap is not installed" >&2; exit 1; }

t0=$(date +%s)
dir=$(mktemp -d /var/tmp/vigil-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
root=$dir/root
echo "base-images: debootstrap --variant=minbase bookworm from $mirror (for ${need[*]})"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$dir/log" 2>&1 ||
	{ tail -20 "$dir/log" >&2; exit 1; }

# apt inside the images: this machine's Debian sources (bookworm, -updates, -security as apt
# has them here) and its date-check settings (a snapshot mirror's Release files may be old).
if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
	rm -f "$root/etc/apt/sources.list"
	for f in /etc/apt/sources.list.d/*.sources; do
		grep -q 'debian' "$f" && cp "$f" "$root/etc/apt/sources.list.d/"
	done
fi
grep -rhs 'Check-Valid-Until\|Check-Date' /etc/apt/apt.conf.d/ >"$root/etc/apt/apt.conf.d/99base-images" || true
# As the official images: no caches or lists kept in layers, no translations.
printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n' \
	>"$root/etc/apt/apt.conf.d/docker-clean"
printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/var/log/*.log

import() { # TAG: the rootfs as one layer
	tar --numeric-owner -C "$root" -c . | $docker import --change 'CMD ["bash"]' - "$1" >/dev/null
	echo "base-images: imported $1 ($($docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'))"
}
if $docker image inspect debian:12 >/dev/null 2>&1; then :; else import debian:12; fi
if ! $docker image inspect debian:12-slim >/dev/null 2>&1; then
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'SLIM'
# as debian:*-slim: no documentation, man pages or locales
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
SLIM
	find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
	import debian:12-slim
fi
echo "base-images: done in $(($(date +%s) - t0)) s"
