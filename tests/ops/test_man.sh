#!/usr/bin/env bash
# The man pages vigil(8) and vigil.conf(5) (scripts/man/):
#  1. both render with man -l and groff without a single warning;
#  2. every keyword of the configuration parser's tables (the KW[] rows of
#     broker/config_kw.h and any struct kw table in broker/config_bridge.h)
#     has an entry in vigil.conf.5: a .B / .BI / .BR line that starts with it,
#     so an option added without documentation fails here;
#  3. every flag that "vigil --help" prints has an entry in vigil.8.
# Exit status 0 = pass. Usage: tests/ops/test_man.sh   (VIGIL_BIN: the binary)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bin=${VIGIL_BIN:-$top/vigil}
fail=0
bad() { echo "FAIL test_man: $*"; fail=1; }

for page in scripts/man/vigil.8 scripts/man/vigil.conf.5; do
	[ -f "$page" ] || { bad "$page missing"; continue; }
	out=$(MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null)
	rc=$?
	[ $rc -eq 0 ] && [ -z "$out" ] || bad "man -l $page: rc=$rc: $out"
	out=$(groff -man -ww -z "$page" 2>&1)
	rc=$?
	[ $rc -eq 0 ] && [ -z "$out" ] || bad "groff -man -ww $page: rc=$rc: $out"
	lines=$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
	[ "$lines" -gt 100 ] || bad "$page renders to only $lines lines"
	echo "checked: $page renders without warnings ($lines lines at 80 columns)"
done

# Keywords of the parser's tables: rows NAME("keyword", ...) inside
# "static const struct kw X[] = {" ... "};".
keywords() {
	awk '/^static const struct kw [A-Za-z_0-9]+\[\] = \{/ { on = 1; next }
	     on && /^\};/ { on = 0 }
	     on' broker/config_kw.h broker/config_bridge.h |
		grep -oE '\<(BOOL|STR|INT|FN|FNF|ERR)\("[^"]+"' | sed -E 's/^[A-Z]+\("//; s/"$//' | sort -u
}
# Does vigil.conf.5 have an entry line for keyword $1?
documented() {
	local k
	k=$(printf '%s' "$1" | sed 's/[.[\*^$]/\\&/g')
	grep -qE "^\.(B|BI|BR) +\"?$k(\"| |$)" scripts/man/vigil.conf.5
}

kws=$(keywords)
n=$(printf '%s\n' "$kws" | grep -c .)
[ "$n" -ge 100 ] || bad "only $n keywords found in broker/config_kw.h / config_bridge.h: is the table format changed?"
missing=""
for k in $kws; do
	documented "$k" || missing="$missing $k"
done
[ -z "$missing" ] || bad "configuration keywords without an entry in scripts/man/vigil.conf.5:$missing"
# The checker itself can fail: a keyword that is not there is reported as such.
! documented "no_such_option_for_test_man" || bad "the keyword check accepts anything"
echo "checked: $n configuration keywords of the parser tables all have an entry in vigil.conf.5"

# RELOAD in vigil.conf.5 names every option the parser marks F_RELOAD (the security options
# as a group, since they are listed at the top of the page).
reloadable=$(awk '/^static const struct kw [A-Za-z_0-9]+\[\] = \{/ { on = 1; next }
	     on && /^\};/ { on = 0 }
	     on && /F_RELOAD/' broker/config_kw.h broker/config_bridge.h |
	grep -v 'S_SECURITY' | grep -oE '\<(BOOL|STR|INT|FN|FNF)\("[^"]+"' | sed -E 's/^[A-Z]+\("//; s/"$//' | sort -u)
reload_text=$(MANWIDTH=1000 man -l scripts/man/vigil.conf.5 2>/dev/null | sed -n '/^RELOAD/,/^EXAMPLE/p' | tr -d '\n')
nr=$(printf '%s\n' "$reloadable" | grep -c .)
[ "$nr" -ge 20 ] || bad "only $nr reloadable options found"
missing=""
for k in $reloadable; do
	printf '%s' "$reload_text" | grep -qE "(^|[ (,])$k([ ),;]|$)" || missing="$missing $k"
done
[ -z "$missing" ] || bad "reloadable options not named in RELOAD of vigil.conf.5:$missing"
echo "checked: $nr reloadable (F_RELOAD) options named in RELOAD of vigil.conf.5"

# mosquitto 2.0.11's own list (Debian's mosquitto.conf(5)): each option has an entry in
# vigil.conf.5 and is named in mosquitto-compat.md (as `option`).
mosq5=/usr/share/man/man5/mosquitto.conf.5.gz
if [ -r "$mosq5" ]; then
	# an option's entry: ".PP", a line of \fBname\fR \fIvalue\fR (some name two spellings), ".RS"
	mopts=$(zcat "$mosq5" |
		awk 'prev == "PP" && /^\\fB/ { cand = $0; prev = "C"; next }
		     prev == "C" && /^\.RS/ { print cand }
		     { prev = ($0 == ".PP") ? "PP" : "" }' |
		grep -oE '\\fB[a-z][a-z0-9_]*(\\&\.[0-9]+)?' | sed -E 's/^\\fB//; s/\\&//' | sort -u)
	nm=$(printf '%s\n' "$mopts" | grep -c .)
	[ "$nm" -ge 100 ] || bad "only $nm options read from $mosq5"
	miss5="" missc=""
	for o in $mopts; do
		documented "$o" || miss5="$miss5 $o"
		grep -qF "\`$o" mosquitto-compat.md || missc="$missc $o"
	done
	[ -z "$miss5" ] || bad "mosquitto.conf(5) options without an entry in vigil.conf.5:$miss5"
	[ -z "$missc" ] || bad "mosquitto.conf(5) options not named in mosquitto-compat.md:$missc"
	echo "checked: $nm options of mosquitto 2.0.11's mosquitto.conf(5) in vigil.conf.5 and mosquitto-compat.md"
else
	echo "SKIP (part): $mosq5 not installed (Debian package mosquitto), mosquitto's option list not compared"
fi

# $SYS: every topic of tests/broker/26_sys.py's list (mosquitto 2.0.11's, and vigil's two
# named ones) is described in vigil.8 (the load averages by their pattern).
systopics=$(/usr/bin/python3 -c "
import sys, importlib; sys.path.insert(0, 'tests/broker'); m = importlib.import_module('26_sys')
print('\n'.join(sorted(t for t in m.MOSQUITTO_2_0_11 | m.VIGIL_NAMED if '/load/' not in t)))")
ns=$(printf '%s\n' "$systopics" | grep -c .)
[ "$ns" -ge 25 ] || bad "only $ns \$SYS topics read from tests/broker/26_sys.py"
rendered=$(MANWIDTH=300 man -l scripts/man/vigil.8 2>/dev/null)
missing=""
while IFS= read -r t; do
	printf '%s\n' "$rendered" | grep -qF -- "$t" || missing="$missing '$t'"
done <<<"$systopics"
printf '%s\n' "$rendered" | grep -qF -- '$SYS/broker/load/what/span' || missing="$missing load/what/span"
[ -z "$missing" ] || bad "\$SYS topics not described in vigil.8 (BROKER STATUS):$missing"
echo "checked: $ns \$SYS topics of tests/broker/26_sys.py and the load averages described in vigil.8"

# Command-line flags: what --help prints, each an option entry of vigil.8.
if [ ! -x "$bin" ]; then
	bad "no vigil binary at $bin (build it, or set VIGIL_BIN)"
else
	flags=$("$bin" --help 2>&1 | grep -oE '(^|[ [])--?[a-z][a-z-]*' | sed -E 's/^[ [ ]//' | sort -u)
	nf=$(printf '%s\n' "$flags" | grep -c .)
	[ "$nf" -ge 6 ] || bad "only $nf flags in '$bin --help': $flags"
	for f in $flags; do
		r=$(printf '%s' "$f" | sed 's/-/\\\\-/g')
		grep -E "^\.(B|BI|BR|TP)" scripts/man/vigil.8 | grep -qE "$r([^a-z-]|$)" ||
			bad "flag $f (vigil --help) has no entry in scripts/man/vigil.8"
	done
	echo "checked: $nf command-line flags of vigil --help all have an entry in vigil.8:" $flags
fi

[ $fail -eq 0 ] && echo "PASS test_man"
exit $fail
