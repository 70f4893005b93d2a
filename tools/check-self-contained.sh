#!/bin/sh
# Fails (exit 1, naming each line) when a file of the repository points outside
# it: to the sibling "shared" folder or to design notes the repository does
# not hold (API, DESIGN, PROTOCOL or STYLE with a .md suffix). The project's
# reference is docs/reference.md, docs/protocol.md and docs/architecture.md.
cd "$(dirname "$0")/.." || exit 2
pattern='(\.\./shared/|\b(API|DESIGN|PROTOCOL|STYLE)\.md\b)'
self=tools/check-self-contained.sh
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git grep -n -I -E "$pattern" -- . ":(exclude)$self"
else   # an unpacked tarball: every file but build output
    grep -rnIE --exclude-dir=.git --exclude-dir='build*' "$pattern" . | grep -v "^\./$self:"
fi
status=$?
if [ "$status" -eq 0 ]; then
    echo "check-self-contained: the lines above point outside the repository;" \
         "point to docs/ instead" >&2
    exit 1
fi
[ "$status" -eq 1 ] || exit 2   # git grep / grep failed
exit 0
